-- Run before the versioned migrations: the schema and the table recording them.
-- The schema is created only when it is missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on
-- the database even when the schema exists, and the least-privileged role (sql/roles/) owns
-- recon without having it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'recon') THEN
        CREATE SCHEMA recon;
    END IF;
END
$$;
CREATE TABLE IF NOT EXISTS recon.schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
