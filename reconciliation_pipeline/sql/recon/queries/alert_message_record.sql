-- One grouped message sent (or not) to one channel.
INSERT INTO recon.alert_messages (route, channel, channel_type, kind, run_id, incident_ids, status, error, payload)
VALUES (:route, :channel, :channel_type, :kind, :run_id, CAST(:incident_ids AS bigint[]), :status, :error,
        CAST(:payload AS jsonb))
