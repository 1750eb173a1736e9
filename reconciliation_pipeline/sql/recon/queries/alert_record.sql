-- Record a delivery attempt of one incident occurrence and kind; a retry updates its row.
INSERT INTO recon.alerts AS a (incident_id, occurrence, kind, severity, route, run_id, status, channels, sinks,
                               error, payload, sent_at)
VALUES (:incident_id, :occurrence, :kind, :severity, :route, :run_id, :status, CAST(:channels AS text[]),
        CAST(:sinks AS text[]), :error, CAST(:payload AS jsonb), CASE WHEN :status = 'sent' THEN now() END)
ON CONFLICT (incident_id, occurrence, kind) DO UPDATE
SET status          = EXCLUDED.status,
    route           = EXCLUDED.route,
    run_id          = EXCLUDED.run_id,
    channels        = EXCLUDED.channels,
    sinks           = EXCLUDED.sinks,
    error           = EXCLUDED.error,
    payload         = EXCLUDED.payload,
    attempts        = a.attempts + 1,
    last_attempt_at = now(),
    sent_at         = EXCLUDED.sent_at
