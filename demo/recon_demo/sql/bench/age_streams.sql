-- A steady state: rows were last written when created, not while the benchmark seeded them.
UPDATE streams SET updated_at = created_at
