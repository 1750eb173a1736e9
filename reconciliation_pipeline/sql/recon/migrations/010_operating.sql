-- Living with findings: the on-call workflow (acknowledgements, exemptions,
-- manual resolutions, every action audited), routed and grouped alert
-- deliveries, money findings with their asset and exact amount at stake,
-- coverage per entity and detection latency per incident.

-- Exemptions: a rule by domain, entity pattern, field, drift class and an
-- optional delta direction/bound, with owner, reason and expiry. A finding a
-- live rule matches is still recorded, marked with the rule; its incident
-- neither alerts nor counts as open drift.
CREATE TABLE recon.exemption_rules (
    rule_id        BIGSERIAL PRIMARY KEY,
    domain         TEXT NOT NULL,
    entity_pattern TEXT NOT NULL DEFAULT '*',
    -- The glob as a LIKE pattern: `*` any run, `?` one character, `%`, `_` and `\` literal.
    entity_like    TEXT GENERATED ALWAYS AS (
        replace(replace(replace(replace(replace(entity_pattern, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
    ) STORED,
    field          TEXT,
    drift_class    TEXT,
    direction      TEXT CHECK (direction IN ('chain_above_db', 'chain_below_db')),
    max_abs_delta  NUMERIC(40,0) CHECK (max_abs_delta >= 0),
    owner          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_by     TEXT,
    revoke_reason  TEXT,
    CHECK (expires_at > created_at),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX exemption_rules_domain_idx ON recon.exemption_rules (domain, expires_at) WHERE revoked_at IS NULL;

-- The live rule (lowest id first) matching one finding at a moment; NULL when none does.
-- Both findings and incidents are matched through this one function.
CREATE FUNCTION recon.matching_exemption(p_domain text, p_entity_id text, p_field text, p_drift_class text,
                                         p_delta numeric, p_at timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT r.rule_id
    FROM recon.exemption_rules AS r
    WHERE r.domain = p_domain
      AND r.revoked_at IS NULL
      AND r.expires_at > p_at
      AND p_entity_id LIKE r.entity_like ESCAPE '\'
      AND (r.field IS NULL OR r.field = p_field)
      AND (r.drift_class IS NULL OR r.drift_class = p_drift_class)
      AND (r.direction IS NULL
           OR (r.direction = 'chain_above_db' AND p_delta > 0)
           OR (r.direction = 'chain_below_db' AND p_delta < 0))
      AND (r.max_abs_delta IS NULL OR abs(p_delta) <= r.max_abs_delta)
    ORDER BY r.rule_id
    LIMIT 1
$$;

ALTER TABLE recon.discrepancies
    ADD COLUMN exempt_rule_id    BIGINT REFERENCES recon.exemption_rules (rule_id),
    ADD COLUMN asset_code        TEXT,
    ADD COLUMN asset_issuer      TEXT,
    ADD COLUMN asset_contract_id TEXT,
    ADD COLUMN asset_decimals    SMALLINT,
    ADD COLUMN amount_at_stake   NUMERIC(40,0) CHECK (amount_at_stake >= 0);

ALTER TABLE recon.drift_incidents
    ADD COLUMN acknowledged_at      TIMESTAMPTZ,
    ADD COLUMN acknowledged_until   TIMESTAMPTZ,
    ADD COLUMN acknowledged_by      TEXT,
    ADD COLUMN ack_reason           TEXT,
    ADD COLUMN exempt_rule_id       BIGINT REFERENCES recon.exemption_rules (rule_id),
    ADD COLUMN resolution           TEXT CHECK (resolution IN ('auto', 'manual')),
    ADD COLUMN resolved_by          TEXT,
    ADD COLUMN resolution_note      TEXT,
    ADD COLUMN resolved_run_id      TEXT,
    ADD COLUMN chain_changed_ledger BIGINT,
    ADD COLUMN chain_changed_at     TIMESTAMPTZ,
    ADD COLUMN asset_code           TEXT,
    ADD COLUMN asset_issuer         TEXT,
    ADD COLUMN asset_contract_id    TEXT,
    ADD COLUMN asset_decimals       SMALLINT,
    ADD COLUMN amount_at_stake      NUMERIC(40,0) CHECK (amount_at_stake >= 0);
UPDATE recon.drift_incidents SET resolution = 'auto', resolved_run_id = last_run_id WHERE state = 'resolved';
CREATE INDEX drift_incidents_first_run_idx ON recon.drift_incidents (domain, first_run_id);
CREATE INDEX drift_incidents_resolved_idx ON recon.drift_incidents (resolved_at) WHERE state = 'resolved';

-- The history of every incident: what the pipeline did (opened, reopened,
-- confirmed, resolved) and what on-call did (acknowledged, exempted, resolved
-- by hand), who, when and why. Append-only.
CREATE TABLE recon.incident_events (
    event_id    BIGSERIAL PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES recon.drift_incidents (incident_id),
    occurrence  INTEGER NOT NULL,
    event       TEXT NOT NULL CHECK (event IN ('opened', 'reopened', 'confirmed', 'resolved', 'acknowledged',
                                                'exempted')),
    actor       TEXT NOT NULL,
    reason      TEXT,
    run_id      TEXT,
    rule_id     BIGINT REFERENCES recon.exemption_rules (rule_id),
    until       TIMESTAMPTZ,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX incident_events_incident_idx ON recon.incident_events (incident_id, event_id);
CREATE INDEX incident_events_run_idx ON recon.incident_events (run_id) WHERE run_id IS NOT NULL;
-- A retried step writes a run's events once.
CREATE UNIQUE INDEX incident_events_once_per_run ON recon.incident_events (incident_id, occurrence, event, run_id)
    WHERE run_id IS NOT NULL;
INSERT INTO recon.incident_events (incident_id, occurrence, event, actor, run_id, at)
SELECT incident_id, occurrences, CASE WHEN occurrences = 1 THEN 'opened' ELSE 'reopened' END, 'pipeline',
       first_run_id, first_seen_at
FROM recon.drift_incidents;

-- Alert deliveries become one row per incident occurrence and kind (a trigger
-- when it alerts, a resolve notice when it resolves), routed by name; `sinks`
-- lists the channels that took it, so a retry goes only to the others.
ALTER TABLE recon.alerts DROP CONSTRAINT alerts_route_check;
ALTER TABLE recon.alerts DROP CONSTRAINT alerts_status_check;
ALTER TABLE recon.alerts DROP CONSTRAINT alerts_incident_id_occurrence_key;
ALTER TABLE recon.alerts
    ADD COLUMN kind     TEXT NOT NULL DEFAULT 'trigger' CHECK (kind IN ('trigger', 'resolve')),
    ADD COLUMN channels TEXT[] NOT NULL DEFAULT '{}',
    ADD COLUMN run_id   TEXT,
    ADD CONSTRAINT alerts_status_check CHECK (status IN ('sent', 'logged', 'failed', 'suppressed')),
    ADD CONSTRAINT alerts_once UNIQUE (incident_id, occurrence, kind);
UPDATE recon.alerts SET channels = sinks;

-- One row per grouped message sent to one channel: a route's new (or
-- resolved) incidents of one run. Never holds a secret: webhook URLs, routing
-- keys and passwords stay in the environment.
CREATE TABLE recon.alert_messages (
    message_id   BIGSERIAL PRIMARY KEY,
    route        TEXT NOT NULL,
    channel      TEXT NOT NULL,
    channel_type TEXT NOT NULL CHECK (channel_type IN ('log', 'slack', 'pagerduty', 'email')),
    kind         TEXT NOT NULL CHECK (kind IN ('trigger', 'resolve', 'run_failure')),
    run_id       TEXT,
    incident_ids BIGINT[] NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('sent', 'failed')),
    error        TEXT,
    payload      JSONB NOT NULL,
    sent_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX alert_messages_sent_idx ON recon.alert_messages (sent_at);

-- Coverage: every entity a run knew of (compared or not), and when it was last compared.
CREATE TABLE recon.entity_coverage (
    domain          TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    first_known_at  TIMESTAMPTZ NOT NULL,
    last_known_at   TIMESTAMPTZ NOT NULL,
    last_checked_at TIMESTAMPTZ,
    last_run_id     TEXT NOT NULL,
    PRIMARY KEY (domain, entity_type, entity_id)
) WITH (fillfactor = 60);
-- Every sweep rewrites each of its entities' rows: free room in each page lets those
-- updates stay on the page without touching the index (HOT), which halved a 1M-row sweep.
