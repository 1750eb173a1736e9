-- Compare-and-swap: only matches while the projection still holds the observed value.
UPDATE user_streaks
SET qualified_days = CAST(:target_value AS integer), updated_at = now()
WHERE user_id = CAST(:entity_key AS bigint)
  AND qualified_days = CAST(:observed_value AS integer)
