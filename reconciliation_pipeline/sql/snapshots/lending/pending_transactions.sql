-- Transactions the app still records as pending, and those that still have an
-- open ORPHANED_PENDING_TX incident (so the incident closes once the row is
-- settled). Amounts are cast to text so they stay exact.
SELECT t.tx_hash,
       t.kind,
       t.loan_id,
       t.address,
       t.amount::text AS amount,
       t.status,
       t.submitted_at
FROM transactions AS t
WHERE t.status = 'pending'
   OR EXISTS (
        SELECT 1
        FROM recon.drift_incidents AS i
        WHERE i.domain = 'lending'
          AND i.entity_type = 'transaction'
          AND i.entity_id = 'tx_' || t.tx_hash
          AND i.state <> 'resolved')
ORDER BY t.submitted_at, t.tx_hash
