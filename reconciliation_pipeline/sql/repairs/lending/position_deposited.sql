-- Compare-and-swap: only matches while the position still holds the observed deposit.
UPDATE liquidity_positions
SET deposited = CAST(:target_value AS numeric), updated_at = now()
WHERE provider_address = :entity_key
  AND deposited = CAST(:observed_value AS numeric)
