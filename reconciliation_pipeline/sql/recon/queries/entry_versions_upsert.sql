-- Record the entries one run compared (arrays aligned by position). Rows whose
-- ledger did not move are left as they are, so an incremental run writes little.
INSERT INTO recon.entry_versions (domain, entry_kind, entity_key, last_modified_ledger, run_id, recorded_at)
SELECT :domain, :entry_kind, v.entity_key, v.last_modified_ledger, :run_id, now()
FROM unnest(CAST(:entity_keys AS text[]), CAST(:last_modified_ledgers AS bigint[]))
     AS v(entity_key, last_modified_ledger)
ON CONFLICT (domain, entry_kind, entity_key) DO UPDATE
SET last_modified_ledger = EXCLUDED.last_modified_ledger,
    run_id = EXCLUDED.run_id,
    recorded_at = EXCLUDED.recorded_at
WHERE recon.entry_versions.last_modified_ledger IS DISTINCT FROM EXCLUDED.last_modified_ledger
