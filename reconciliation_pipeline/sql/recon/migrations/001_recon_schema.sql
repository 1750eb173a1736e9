-- The typed outputs of the reconciliation (schema recon). Values that can be
-- amounts are kept exactly: db_value/chain_value as text in canonical form,
-- delta as NUMERIC(40,0) (the difference of two i128 needs 129 bits).

CREATE TABLE recon.runs (
    run_id           TEXT NOT NULL,
    domain           TEXT NOT NULL,
    job_name         TEXT,
    partition_key    TEXT,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    status           TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
    dry_run          BOOLEAN NOT NULL DEFAULT false,      -- set by the repair step
    ledger_sequence  BIGINT,
    db_snapshot_at   TIMESTAMPTZ,
    entities_checked BIGINT NOT NULL DEFAULT 0,
    entities_unchecked BIGINT NOT NULL DEFAULT 0,
    finding_counts   JSONB NOT NULL DEFAULT '{}'::jsonb,
    repairs_planned  INTEGER NOT NULL DEFAULT 0,
    repairs_applied  INTEGER NOT NULL DEFAULT 0,
    repairs_skipped  INTEGER NOT NULL DEFAULT 0,
    repairs_failed   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, domain)
);
COMMENT ON TABLE recon.runs IS 'One row per pipeline run and domain: what was checked, at which ledger, and findings by drift class.';

CREATE TABLE recon.discrepancies (
    discrepancy_id  BIGSERIAL PRIMARY KEY,
    run_id          TEXT NOT NULL,
    domain          TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    field           TEXT NOT NULL,                -- '*' for findings about the whole entity
    drift_class     TEXT NOT NULL CHECK (drift_class IN (
        'MISSING_ON_CHAIN', 'MISSING_IN_DB', 'VALUE_MISMATCH', 'STATUS_MISMATCH',
        'UNRESOLVED_PROVISIONAL_ID', 'ORPHANED_PENDING_TX', 'MISSED_EVENT',
        'INVARIANT_VIOLATION', 'INVALID_ADDRESS', 'CHAIN_READ_ERROR',
        'TTL_EXPIRING', 'PROJECTION_DRIFT')),
    severity        TEXT NOT NULL CHECK (severity IN ('INFO', 'WARN', 'CRITICAL')),
    db_value        TEXT,
    chain_value     TEXT,
    delta           NUMERIC(40,0),                -- chain minus database, for amounts
    ledger_sequence BIGINT,
    db_snapshot_at  TIMESTAMPTZ,
    partition_key   TEXT,
    details         JSONB NOT NULL DEFAULT '{}'::jsonb,
    detected_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX discrepancies_partition_idx ON recon.discrepancies (domain, partition_key);
CREATE INDEX discrepancies_run_idx ON recon.discrepancies (run_id);
CREATE INDEX discrepancies_entity_idx ON recon.discrepancies (domain, entity_id);
COMMENT ON TABLE recon.discrepancies IS 'One row per finding. Re-running a partition replaces that partition''s rows.';

CREATE TABLE recon.drift_incidents (
    incident_id      BIGSERIAL PRIMARY KEY,
    domain           TEXT NOT NULL,
    entity_type      TEXT NOT NULL,
    entity_id        TEXT NOT NULL,
    field            TEXT NOT NULL,
    drift_class      TEXT NOT NULL,
    severity         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('open', 'confirmed', 'resolved')),
    first_seen_at    TIMESTAMPTZ NOT NULL,
    last_seen_at     TIMESTAMPTZ NOT NULL,
    first_run_id     TEXT NOT NULL,
    last_run_id      TEXT NOT NULL,
    consecutive_runs INTEGER NOT NULL,
    occurrences      INTEGER NOT NULL DEFAULT 1,  -- how many times it opened (re-opened after resolution)
    confirmed_at     TIMESTAMPTZ,
    resolved_at      TIMESTAMPTZ,
    last_db_value    TEXT,
    last_chain_value TEXT,
    last_delta       NUMERIC(40,0),
    UNIQUE (domain, entity_type, entity_id, field, drift_class)
);
CREATE INDEX drift_incidents_state_idx ON recon.drift_incidents (domain, state);
COMMENT ON TABLE recon.drift_incidents IS 'One row per (domain, entity, field, drift class): open -> confirmed after N consecutive runs or a grace period -> resolved when a run no longer sees it.';

CREATE TABLE recon.repairs (
    repair_id       BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,         -- hash of (domain, entity, field, observed, target)
    run_id          TEXT NOT NULL,                -- the run that planned it
    applied_run_id  TEXT,
    domain          TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    entity_key      TEXT NOT NULL,
    field           TEXT NOT NULL,
    repair_query    TEXT NOT NULL,                -- the .sql file that applies it
    observed_value  TEXT,                         -- before: what the database held when planned
    target_value    TEXT,                         -- after: the authoritative side's value
    state           TEXT NOT NULL CHECK (state IN ('planned', 'applied', 'skipped', 'failed')),
    reason          TEXT,
    planned_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ
);
CREATE INDEX repairs_state_idx ON recon.repairs (domain, state);

CREATE TABLE recon.repair_audit (
    audit_id     BIGSERIAL PRIMARY KEY,
    repair_id    BIGINT NOT NULL REFERENCES recon.repairs (repair_id),
    run_id       TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('applied', 'skipped', 'failed')),
    before_value TEXT,
    after_value  TEXT,
    note         TEXT,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE recon.repair_audit IS 'Append-only: every attempt to apply a repair, written in the same transaction as the application-table change.';

CREATE TABLE recon.streak_syncs (
    sync_id        BIGSERIAL PRIMARY KEY,
    run_id         TEXT NOT NULL,
    user_id        BIGINT,
    player_address TEXT NOT NULL,
    streak_value   INTEGER NOT NULL,
    chain_value    INTEGER,                       -- what the contract held when re-read
    tx_hash        TEXT,
    status         TEXT NOT NULL CHECK (status IN ('planned', 'skipped_match', 'pending', 'success', 'failed', 'error')),
    error          TEXT,
    attempted_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at    TIMESTAMPTZ
);
CREATE INDEX streak_syncs_player_idx ON recon.streak_syncs (player_address, attempted_at);
