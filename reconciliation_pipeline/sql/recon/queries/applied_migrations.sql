SELECT version FROM recon.schema_migrations
