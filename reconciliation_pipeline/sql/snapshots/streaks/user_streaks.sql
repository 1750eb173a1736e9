-- Database side of the streaks reconciliation: every streak participant (a user
-- with a stored projection row or at least one focus session), their wallet and
-- timezone, and the projection as stored. Users of other apps who never focused
-- are not players and are left out. A NULL or blank wallet is no wallet.
-- The core scopes a sensor's run to the users that changed (their ids).
SELECT u.id                                AS user_id,
       NULLIF(btrim(u.wallet_address), '') AS wallet_address,
       u.timezone                          AS timezone,
       s.user_id IS NOT NULL               AS has_projection,
       s.current_streak::text              AS current_streak,
       s.longest_streak::text              AS longest_streak,
       s.last_qualified_date               AS last_qualified_date,
       s.qualified_days::text              AS qualified_days,
       s.updated_at                        AS projection_updated_at
FROM users AS u
LEFT JOIN user_streaks AS s ON s.user_id = u.id
WHERE s.user_id IS NOT NULL OR EXISTS (SELECT 1 FROM focus_sessions AS f WHERE f.user_id = u.id)
