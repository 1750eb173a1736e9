-- Compare-and-swap: only matches while the loan still holds the observed principal.
UPDATE loans
SET principal = CAST(:target_value AS numeric), updated_at = now()
WHERE chain_loan_id = CAST(:entity_key AS numeric)
  AND principal = CAST(:observed_value AS numeric)
