-- A steady state: users' rows were last written a day ago, not while the benchmark seeded them.
UPDATE users SET updated_at = now() - interval '1 day'
