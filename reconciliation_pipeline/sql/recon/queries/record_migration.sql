INSERT INTO recon.schema_migrations (version, name) VALUES (:version, :name)
