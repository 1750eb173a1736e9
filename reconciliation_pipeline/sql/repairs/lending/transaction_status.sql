-- Settle an orphaned pending transaction to what getTransaction reported
-- (succeeded, failed or expired). Compare-and-swap: only matches while the
-- row still holds the observed status.
UPDATE transactions
SET status = :target_value, updated_at = now()
WHERE tx_hash = :entity_key
  AND status = :observed_value
