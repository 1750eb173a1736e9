-- Resolve a provisional loan to its on-chain id. The row keeps its own primary
-- key (other tables may refer to it); chain_loan_id records the real Loan(u64) id.
-- Compare-and-swap: the observed value is the submitted transaction hash the run
-- matched to a loan_created event. Only matches while the row is still
-- provisional with that same hash, and while no other row already holds the
-- real id (then the app resolved it some other way and its write wins).
UPDATE loans
SET chain_loan_id = CAST(:target_value AS numeric), is_provisional = false, updated_at = now()
WHERE id = :entity_key
  AND chain_loan_id IS NULL
  AND submitted_tx_hash = :observed_value
  AND NOT EXISTS (SELECT 1 FROM loans AS other WHERE other.chain_loan_id = CAST(:target_value AS numeric))
