-- Record a delivery attempt of one incident occurrence; a retry updates its row.
INSERT INTO recon.alerts AS a (incident_id, occurrence, severity, route, status, sinks, error, payload, sent_at)
VALUES (:incident_id, :occurrence, :severity, :route, :status, CAST(:sinks AS text[]), :error,
        CAST(:payload AS jsonb), CASE WHEN :status IN ('sent', 'logged') THEN now() END)
ON CONFLICT (incident_id, occurrence) DO UPDATE
SET status          = EXCLUDED.status,
    sinks           = EXCLUDED.sinks,
    error           = EXCLUDED.error,
    payload         = EXCLUDED.payload,
    attempts        = a.attempts + 1,
    last_attempt_at = now(),
    sent_at         = EXCLUDED.sent_at
