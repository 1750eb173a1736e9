-- An incident seen in this run is confirmed once it persisted across enough
-- consecutive runs or is older than the grace period; each confirmation is an event.
WITH confirmed AS (
    UPDATE recon.drift_incidents
    SET state = 'confirmed', confirmed_at = :seen_at
    WHERE domain = :domain
      AND state = 'open'
      AND last_run_id = :run_id
      AND (consecutive_runs >= :confirm_after_runs
           OR first_seen_at <= CAST(:seen_at AS timestamptz) - make_interval(mins => :grace_minutes))
    RETURNING incident_id, occurrences
)
INSERT INTO recon.incident_events (incident_id, occurrence, event, actor, run_id, at)
SELECT incident_id, occurrences, 'confirmed', 'pipeline', :run_id, :seen_at FROM confirmed
ON CONFLICT DO NOTHING
