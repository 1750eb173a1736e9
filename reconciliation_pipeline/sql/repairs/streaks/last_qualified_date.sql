-- Compare-and-swap: only matches while the projection still holds the observed
-- date (NULL = never qualified, so the comparison is NULL-safe).
UPDATE user_streaks
SET last_qualified_date = CAST(:target_value AS date), updated_at = now()
WHERE user_id = CAST(:entity_key AS bigint)
  AND last_qualified_date IS NOT DISTINCT FROM CAST(:observed_value AS date)
