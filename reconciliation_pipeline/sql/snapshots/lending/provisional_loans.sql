-- Loans the app stored under a provisional id (no chain id yet), and loans
-- that still have an open UNRESOLVED_PROVISIONAL_ID incident: once resolved,
-- the row is seen again so that its incident can be closed.
SELECT l.id                  AS db_loan_id,
       l.chain_loan_id::text AS chain_loan_id,
       l.submitted_tx_hash,
       l.borrower_address    AS borrower,
       l.principal::text     AS principal,
       l.created_at
FROM loans AS l
WHERE l.chain_loan_id IS NULL
   OR EXISTS (
        SELECT 1
        FROM recon.drift_incidents AS i
        WHERE i.domain = 'lending'
          AND i.entity_type = 'loan'
          AND i.entity_id = 'loan_' || l.id
          AND i.drift_class = 'UNRESOLVED_PROVISIONAL_ID'
          AND i.state <> 'resolved')
ORDER BY l.created_at, l.id
