-- The seeded tables as an app's would be between writes: the aging UPDATE's dead row versions
-- vacuumed and statistics current (autovacuum would do both long before a nightly sweep, and
-- otherwise does them during the first group, on the same two cores).
VACUUM (ANALYZE) streams, users
