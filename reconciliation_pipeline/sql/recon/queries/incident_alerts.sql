SELECT occurrence, kind, route, status, channels, sinks, attempts, error, first_attempt_at, sent_at
FROM recon.alerts WHERE incident_id = :incident_id ORDER BY occurrence, kind
