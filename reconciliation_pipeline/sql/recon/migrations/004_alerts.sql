-- Alert deliveries. One row per incident occurrence (an incident that resolves
-- and re-opens is a new occurrence and alerts again): this is what makes each
-- incident alert once, not on every run. A delivery that failed is retried on
-- later sensor ticks until it is sent or runs out of attempts.

CREATE TABLE recon.alerts (
    alert_id         BIGSERIAL PRIMARY KEY,
    incident_id      BIGINT NOT NULL REFERENCES recon.drift_incidents (incident_id),
    occurrence       INTEGER NOT NULL,
    severity         TEXT NOT NULL CHECK (severity IN ('INFO', 'WARN', 'CRITICAL')),
    route            TEXT NOT NULL CHECK (route IN ('immediate', 'confirmed')),
    status           TEXT NOT NULL CHECK (status IN ('sent', 'logged', 'failed')),
    sinks            TEXT[] NOT NULL,                 -- where it went: log, webhook
    attempts         INTEGER NOT NULL DEFAULT 1,
    error            TEXT,                            -- last delivery error (never the webhook URL)
    payload          JSONB NOT NULL,
    first_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at          TIMESTAMPTZ,
    UNIQUE (incident_id, occurrence)
);
CREATE INDEX alerts_status_idx ON recon.alerts (status);
COMMENT ON TABLE recon.alerts IS 'One row per alerted incident occurrence: route, sinks, delivery status and the payload sent.';

CREATE INDEX drift_incidents_last_seen_idx ON recon.drift_incidents (last_seen_at);

CREATE OR REPLACE VIEW recon.unalerted_incidents AS
SELECT i.incident_id, i.domain, i.entity_type, i.entity_id, i.field, i.drift_class, i.severity, i.state,
       i.first_seen_at, i.last_seen_at, i.consecutive_runs, i.occurrences
FROM recon.drift_incidents AS i
LEFT JOIN recon.alerts AS a
       ON a.incident_id = i.incident_id AND a.occurrence = i.occurrences AND a.status IN ('sent', 'logged')
WHERE i.state <> 'resolved' AND a.alert_id IS NULL;
COMMENT ON VIEW recon.unalerted_incidents IS 'Unresolved incidents whose current occurrence has not been alerted (yet: WARN waits for confirmation).';
