-- Streak participants whose streak may have changed since the sensor's cursor:
-- their projection row was written or a focus session of theirs arrived (late
-- sessions included: received_at is when it reached the database). :since
-- already includes an overlap for transactions that committed late.
SELECT c.user_id, max(c.changed_at) AS changed_at
FROM (
    SELECT user_id, updated_at AS changed_at FROM user_streaks WHERE updated_at > CAST(:since AS timestamptz)
    UNION ALL
    SELECT user_id, received_at FROM focus_sessions WHERE received_at > CAST(:since AS timestamptz)
) AS c
GROUP BY c.user_id
ORDER BY c.user_id
