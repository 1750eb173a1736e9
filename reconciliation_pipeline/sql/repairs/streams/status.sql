-- Compare-and-swap: only matches while the row still holds the observed status.
UPDATE streams
SET status = :target_value, updated_at = now()
WHERE id = CAST(:entity_key AS numeric)
  AND lower(status) = :observed_value
