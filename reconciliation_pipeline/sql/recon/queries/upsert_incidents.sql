-- Record this run's findings as incidents. A finding already open counts one
-- more consecutive run (unless this same run recorded it already); a resolved
-- one re-opens from scratch.
INSERT INTO recon.drift_incidents AS i (
    domain, entity_type, entity_id, field, drift_class, severity, state,
    first_seen_at, last_seen_at, first_run_id, last_run_id, consecutive_runs,
    last_db_value, last_chain_value, last_delta)
SELECT :domain, f.entity_type, f.entity_id, f.field, f.drift_class, f.severity, 'open',
       :seen_at, :seen_at, :run_id, :run_id, 1,
       f.db_value, f.chain_value, CAST(f.delta AS numeric)
FROM unnest(CAST(:entity_types AS text[]), CAST(:entity_ids AS text[]), CAST(:fields AS text[]),
            CAST(:drift_classes AS text[]), CAST(:severities AS text[]), CAST(:db_values AS text[]),
            CAST(:chain_values AS text[]), CAST(:deltas AS text[]))
     AS f(entity_type, entity_id, field, drift_class, severity, db_value, chain_value, delta)
ON CONFLICT (domain, entity_type, entity_id, field, drift_class) DO UPDATE
SET severity         = EXCLUDED.severity,
    last_seen_at     = EXCLUDED.last_seen_at,
    last_run_id      = EXCLUDED.last_run_id,
    last_db_value    = EXCLUDED.last_db_value,
    last_chain_value = EXCLUDED.last_chain_value,
    last_delta       = EXCLUDED.last_delta,
    consecutive_runs = CASE
        WHEN i.last_run_id = EXCLUDED.last_run_id THEN i.consecutive_runs
        WHEN i.state = 'resolved' THEN 1
        ELSE i.consecutive_runs + 1 END,
    occurrences      = CASE WHEN i.state = 'resolved' THEN i.occurrences + 1 ELSE i.occurrences END,
    first_seen_at    = CASE WHEN i.state = 'resolved' THEN EXCLUDED.first_seen_at ELSE i.first_seen_at END,
    first_run_id     = CASE WHEN i.state = 'resolved' THEN EXCLUDED.first_run_id ELSE i.first_run_id END,
    confirmed_at     = CASE WHEN i.state = 'resolved' THEN NULL ELSE i.confirmed_at END,
    resolved_at      = NULL,
    state            = CASE WHEN i.state = 'resolved' THEN 'open' ELSE i.state END
