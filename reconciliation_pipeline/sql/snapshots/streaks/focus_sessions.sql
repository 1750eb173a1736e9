-- The immutable focus-session log the streak engine recomputes streaks from:
-- every session that started before :cutoff (the engine trims each user's
-- sessions at their own local cut-off), including late arrivals.
-- :user_ids (bigint[] or NULL for everyone) scopes a run to the users a sensor saw change.
SELECT f.id         AS session_id,
       f.user_id    AS user_id,
       f.started_at AS started_at,
       f.ended_at   AS ended_at
FROM focus_sessions AS f
WHERE f.started_at < :cutoff
  AND (CAST(:user_ids AS bigint[]) IS NULL OR f.user_id = ANY(CAST(:user_ids AS bigint[])))
