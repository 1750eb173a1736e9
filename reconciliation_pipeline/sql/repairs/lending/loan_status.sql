-- Compare-and-swap: only matches while the loan still holds the observed status.
UPDATE loans
SET status = :target_value, updated_at = now()
WHERE chain_loan_id = CAST(:entity_key AS numeric)
  AND lower(status) = :observed_value
