-- Compare-and-swap: only matches while the row still holds the observed amount.
UPDATE streams
SET released_amount = CAST(:target_value AS numeric), updated_at = now()
WHERE id = CAST(:entity_key AS numeric)
  AND released_amount = CAST(:observed_value AS numeric)
