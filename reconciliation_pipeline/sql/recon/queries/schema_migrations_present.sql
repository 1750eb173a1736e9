SELECT to_regclass('recon.schema_migrations') IS NOT NULL
