-- Database side of the streaks reconciliation: every streak participant (a user
-- with a stored projection row or at least one focus session), their wallet and
-- timezone, and the projection as stored. Users of other apps who never focused
-- are not players and are left out.
-- :user_ids (bigint[] or NULL for everyone) scopes a run to the users a sensor saw change.
SELECT u.id                  AS user_id,
       u.wallet_address      AS wallet_address,
       u.timezone            AS timezone,
       s.user_id IS NOT NULL AS has_projection,
       s.current_streak      AS current_streak,
       s.longest_streak      AS longest_streak,
       s.last_qualified_date AS last_qualified_date,
       s.qualified_days      AS qualified_days,
       s.updated_at          AS projection_updated_at
FROM users AS u
LEFT JOIN user_streaks AS s ON s.user_id = u.id
WHERE (s.user_id IS NOT NULL OR EXISTS (SELECT 1 FROM focus_sessions AS f WHERE f.user_id = u.id))
  AND (CAST(:user_ids AS bigint[]) IS NULL OR u.id = ANY(CAST(:user_ids AS bigint[])))
ORDER BY u.id
