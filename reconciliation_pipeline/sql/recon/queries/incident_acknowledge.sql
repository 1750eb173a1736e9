-- Acknowledge an incident until a time, and audit it.
WITH acknowledged AS (
    UPDATE recon.drift_incidents
    SET acknowledged_at = :at, acknowledged_until = :until, acknowledged_by = :actor, ack_reason = :reason
    WHERE incident_id = :incident_id
    RETURNING incident_id, occurrences
)
INSERT INTO recon.incident_events (incident_id, occurrence, event, actor, reason, until, at)
SELECT incident_id, occurrences, 'acknowledged', :actor, :reason, :until, :at FROM acknowledged
