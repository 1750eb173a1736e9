-- Resolve an incident by hand with a note, and audit it. A run that sees the drift again reopens it.
WITH resolved AS (
    UPDATE recon.drift_incidents
    SET state = 'resolved', resolved_at = :at, consecutive_runs = 0, resolution = 'manual',
        resolved_by = :actor, resolution_note = :note, resolved_run_id = NULL
    WHERE incident_id = :incident_id AND state <> 'resolved'
    RETURNING incident_id, occurrences
)
INSERT INTO recon.incident_events (incident_id, occurrence, event, actor, reason, at)
SELECT incident_id, occurrences, 'resolved', :actor, :note, :at FROM resolved
