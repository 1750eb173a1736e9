-- Chain history (issue 13): archived entries as a drift class of their own, drift in
-- flight as a status of a finding, where each drift came from (the ledger and the
-- transaction that last wrote a chain entry, cached so re-runs do not ask the RPC
-- again), and the ledger-metadata replays with the problems they met in the history.

ALTER TABLE recon.discrepancies DROP CONSTRAINT discrepancies_drift_class_check;
ALTER TABLE recon.discrepancies ADD CONSTRAINT discrepancies_drift_class_check CHECK (drift_class IN (
    'MISSING_ON_CHAIN', 'MISSING_IN_DB', 'VALUE_MISMATCH', 'STATUS_MISMATCH',
    'UNRESOLVED_PROVISIONAL_ID', 'ORPHANED_PENDING_TX', 'MISSED_EVENT',
    'INVARIANT_VIOLATION', 'INVALID_ADDRESS', 'CHAIN_READ_ERROR',
    'TTL_EXPIRING', 'ARCHIVED', 'PROJECTION_DRIFT'));

-- 'drift', or 'in_flight': one side was written between the two snapshots, so the next
-- run re-checks it; an in-flight finding opens no incident unless it persists.
ALTER TABLE recon.discrepancies
    ADD COLUMN status TEXT NOT NULL DEFAULT 'drift' CHECK (status IN ('drift', 'in_flight'));
COMMENT ON COLUMN recon.discrepancies.status IS
    'drift, or in_flight: the chain entry changed after the database snapshot, or the row after the chain read; re-checked by the next run, no incident unless it persists.';

ALTER TABLE recon.runs ADD COLUMN in_flight BIGINT NOT NULL DEFAULT 0;
COMMENT ON COLUMN recon.runs.in_flight IS 'Findings of the run that were in flight (not counted in finding_counts).';

-- In-flight findings waiting for the next run: seen in flight again there, they persist and
-- become drift; not seen again, they were writes in flight and are forgotten.
CREATE TABLE recon.in_flight (
    domain        TEXT NOT NULL,
    entity_type   TEXT NOT NULL,
    entity_id     TEXT NOT NULL,
    field         TEXT NOT NULL,
    drift_class   TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    seen_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (domain, entity_type, entity_id, field, drift_class)
);
COMMENT ON TABLE recon.in_flight IS 'Findings last seen in flight, per (domain, entity, field, class), until the next run that checks the entity.';

-- Ledgers the reconciliation read through getLedgers: when each closed, and its hash.
CREATE TABLE recon.ledgers (
    ledger_sequence BIGINT PRIMARY KEY,
    ledger_hash     TEXT NOT NULL,
    closed_at       TIMESTAMPTZ NOT NULL,
    fetched_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE recon.ledgers IS 'Close time and hash of each ledger read through getLedgers (drift origins).';

-- Which transaction last wrote a chain entry, per (entry, its last_modified_ledger): the origin
-- of a chain-side finding. tx_hash is NULL when no transaction of that ledger changed the entry.
CREATE TABLE recon.entry_origins (
    ledger_key        TEXT NOT NULL,      -- base64 LedgerKey
    ledger_sequence   BIGINT NOT NULL,    -- the entry's last_modified_ledger
    tx_hash           TEXT,
    transaction_index INTEGER,            -- 1-based application order in the ledger
    operation_index   INTEGER,            -- NULL: a transaction-level change
    change            TEXT,               -- created, updated, restored
    looked_up_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (ledger_key, ledger_sequence)
);
COMMENT ON TABLE recon.entry_origins IS 'The transaction and operation that wrote each chain entry at its last_modified_ledger, read once from getLedgers metadata.';

-- Every ledger range a run replayed from getLedgers metadata (events beyond getEvents''s window),
-- and what it found wrong in that history. A step that replays a partition again replaces its rows.
CREATE TABLE recon.ledger_replays (
    replay_id      BIGSERIAL PRIMARY KEY,
    domain         TEXT NOT NULL,
    purpose        TEXT NOT NULL,         -- the asset that replayed, e.g. lending_events
    run_id         TEXT NOT NULL,
    partition_keys TEXT[] NOT NULL DEFAULT '{}',
    start_ledger   BIGINT NOT NULL,
    end_ledger     BIGINT NOT NULL,       -- exclusive
    source         TEXT NOT NULL,         -- getLedgers, or getLedgers+getEvents
    ledgers_read   BIGINT NOT NULL,
    bytes_read     BIGINT NOT NULL,
    transactions   BIGINT NOT NULL,
    transactions_decoded BIGINT NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ledger_replays_run_idx ON recon.ledger_replays (domain, run_id);
COMMENT ON TABLE recon.ledger_replays IS 'Ledger ranges replayed from getLedgers metadata, per run and partition, with what was read.';

CREATE TABLE recon.ledger_problems (
    replay_id       BIGINT NOT NULL REFERENCES recon.ledger_replays (replay_id) ON DELETE CASCADE,
    ledger_sequence BIGINT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('missing', 'broken_chain', 'undecodable')),
    ledgers         INTEGER NOT NULL DEFAULT 1,   -- missing: how many from ledger_sequence on
    detail          TEXT NOT NULL
);
CREATE INDEX ledger_problems_replay_idx ON recon.ledger_problems (replay_id);
COMMENT ON TABLE recon.ledger_problems IS 'Gaps, hash-chain breaks and unparsable metadata met by a replay; each is also a CHAIN_READ_ERROR finding on entity ledger_<sequence>.';
