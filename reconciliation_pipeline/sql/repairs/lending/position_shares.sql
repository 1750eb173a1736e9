-- Compare-and-swap: only matches while the position still holds the observed shares.
UPDATE liquidity_positions
SET shares = CAST(:target_value AS numeric), updated_at = now()
WHERE provider_address = :entity_key
  AND shares = CAST(:observed_value AS numeric)
