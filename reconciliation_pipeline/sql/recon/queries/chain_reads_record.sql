-- One entity read of a run (a retried step replaces its own row).
INSERT INTO recon.chain_reads (run_id, domain, entity, scope, keys, missing, accepted)
VALUES (:run_id, :domain, :entity, :scope, :keys, :missing, :accepted)
ON CONFLICT (run_id, domain, entity) DO UPDATE
SET scope = EXCLUDED.scope, keys = EXCLUDED.keys, missing = EXCLUDED.missing, accepted = EXCLUDED.accepted,
    read_at = now()
