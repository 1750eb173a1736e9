-- Compare-and-swap: only matches while the projection still holds the observed value.
UPDATE user_streaks
SET longest_streak = CAST(:target_value AS integer), updated_at = now()
WHERE user_id = CAST(:entity_key AS bigint)
  AND longest_streak = CAST(:observed_value AS integer)
