-- Incidents of entities this run checked but no longer found drifting are
-- resolved (each an event). Entities the run could not check (read errors,
-- time limit) keep their incidents as they were.
WITH resolved AS (
    UPDATE recon.drift_incidents AS i
    SET state = 'resolved', resolved_at = :seen_at, consecutive_runs = 0, resolution = 'auto',
        resolved_run_id = :run_id
    FROM unnest(CAST(:entity_types AS text[]), CAST(:entity_ids AS text[])) AS c(entity_type, entity_id)
    WHERE i.domain = :domain
      AND i.state <> 'resolved'
      AND i.last_run_id <> :run_id
      AND i.entity_type = c.entity_type
      AND i.entity_id = c.entity_id
    RETURNING i.incident_id, i.occurrences
)
INSERT INTO recon.incident_events (incident_id, occurrence, event, actor, run_id, at)
SELECT incident_id, occurrences, 'resolved', 'pipeline', :run_id, :seen_at FROM resolved
ON CONFLICT DO NOTHING
