-- Incidents of entities this run checked but no longer found drifting are
-- resolved. Entities the run could not check (read errors, time limit) keep
-- their incidents as they were.
UPDATE recon.drift_incidents AS i
SET state = 'resolved', resolved_at = :seen_at, consecutive_runs = 0
FROM unnest(CAST(:entity_types AS text[]), CAST(:entity_ids AS text[])) AS c(entity_type, entity_id)
WHERE i.domain = :domain
  AND i.state <> 'resolved'
  AND i.last_run_id <> :run_id
  AND i.entity_type = c.entity_type
  AND i.entity_id = c.entity_id
