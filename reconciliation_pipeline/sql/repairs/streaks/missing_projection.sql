-- A participant with sessions but no projection row: insert the recomputed row.
-- Compare-and-swap for a row that did not exist: a row the app inserted in the
-- meantime wins (ON CONFLICT matches nothing and the repair is recorded as skipped).
-- :target_value is the recomputed row as JSON; :observed_value is NULL.
INSERT INTO user_streaks (user_id, current_streak, longest_streak, last_qualified_date, qualified_days, updated_at)
SELECT CAST(:entity_key AS bigint),
       CAST(t.row ->> 'current_streak' AS integer),
       CAST(t.row ->> 'longest_streak' AS integer),
       CAST(t.row ->> 'last_qualified_date' AS date),
       CAST(t.row ->> 'qualified_days' AS integer),
       now()
FROM (SELECT CAST(:target_value AS jsonb) AS row) AS t
WHERE CAST(:observed_value AS text) IS NULL
ON CONFLICT (user_id) DO NOTHING
