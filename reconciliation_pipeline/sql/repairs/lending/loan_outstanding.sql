-- Compare-and-swap: only matches while the loan still holds the observed outstanding amount.
UPDATE loans
SET outstanding = CAST(:target_value AS numeric), updated_at = now()
WHERE chain_loan_id = CAST(:entity_key AS numeric)
  AND outstanding = CAST(:observed_value AS numeric)
