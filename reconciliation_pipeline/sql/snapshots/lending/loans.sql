-- Database side of the loans reconciliation: loans that carry their on-chain
-- Loan(u64) id, in canonical columns. Provisional loans (no chain id yet) are
-- snapshotted by provisional_loans.sql instead. Amounts are cast to text so they
-- reach Python as exact integers. The nightly scope keeps the loans created before
-- the partition's end (created_at), so a backfill replays that day.
SELECT chain_loan_id       AS loan_id,
       id                  AS db_loan_id,
       borrower_address    AS borrower,
       principal::text     AS principal,
       outstanding::text   AS outstanding,
       lower(status)       AS status,
       submitted_tx_hash,
       created_at,
       updated_at
FROM loans
WHERE chain_loan_id IS NOT NULL
