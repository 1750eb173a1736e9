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
COMMENT ON COLUMN recon.in_flight.domain IS 'Domain of the finding.';
COMMENT ON COLUMN recon.in_flight.entity_type IS 'Entity type of the finding.';
COMMENT ON COLUMN recon.in_flight.entity_id IS 'Entity id of the finding.';
COMMENT ON COLUMN recon.in_flight.field IS 'Field of the finding (* for the whole entity).';
COMMENT ON COLUMN recon.in_flight.drift_class IS 'Drift class of the finding.';
COMMENT ON COLUMN recon.in_flight.run_id IS 'The run that saw it in flight.';
COMMENT ON COLUMN recon.in_flight.seen_at IS 'When that run persisted it.';

-- Ledgers the reconciliation read through getLedgers: when each closed, and its hash.
CREATE TABLE recon.ledgers (
    ledger_sequence BIGINT PRIMARY KEY,
    ledger_hash     TEXT NOT NULL,
    closed_at       TIMESTAMPTZ NOT NULL,
    fetched_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE recon.ledgers IS 'Close time and hash of each ledger read through getLedgers (drift origins, detection latency), so no run asks for it again.';
COMMENT ON COLUMN recon.ledgers.ledger_sequence IS 'Ledger sequence number.';
COMMENT ON COLUMN recon.ledgers.ledger_hash IS 'The ledger''s hash (hex), as getLedgers gave it.';
COMMENT ON COLUMN recon.ledgers.closed_at IS 'When the ledger closed.';
COMMENT ON COLUMN recon.ledgers.fetched_at IS 'When it was read from the RPC.';

-- Which transaction last wrote a chain entry, per (entry, its last_modified_ledger): the origin
-- of a chain-side finding. tx_hash is NULL when no transaction of that ledger changed the entry.
CREATE TABLE recon.entry_origins (
    ledger_key        TEXT NOT NULL,
    ledger_sequence   BIGINT NOT NULL,
    tx_hash           TEXT,
    transaction_index INTEGER,
    operation_index   INTEGER,
    change            TEXT,
    looked_up_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (ledger_key, ledger_sequence)
);
COMMENT ON TABLE recon.entry_origins IS 'The transaction and operation that wrote each chain entry at its last_modified_ledger, read once from getLedgers metadata.';
COMMENT ON COLUMN recon.entry_origins.ledger_key IS 'The entry''s LedgerKey (base64 XDR).';
COMMENT ON COLUMN recon.entry_origins.ledger_sequence IS 'The entry''s last_modified_ledger: the ledger whose metadata was read.';
COMMENT ON COLUMN recon.entry_origins.tx_hash IS 'Hash of the transaction that wrote the entry in that ledger; NULL when none did (seeded, or an upgrade).';
COMMENT ON COLUMN recon.entry_origins.transaction_index IS 'That transaction''s 1-based application order in the ledger.';
COMMENT ON COLUMN recon.entry_origins.operation_index IS 'Index of the operation that wrote it; NULL for a transaction-level change.';
COMMENT ON COLUMN recon.entry_origins.change IS 'created, updated or restored.';
COMMENT ON COLUMN recon.entry_origins.looked_up_at IS 'When the ledger''s metadata was read.';

-- Every ledger range a run replayed from getLedgers metadata (events beyond getEvents''s window),
-- and what it found wrong in that history. A step that replays a partition again replaces its rows.
CREATE TABLE recon.ledger_replays (
    replay_id      BIGSERIAL PRIMARY KEY,
    domain         TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    partition_keys TEXT[] NOT NULL DEFAULT '{}',
    start_ledger   BIGINT NOT NULL,
    end_ledger     BIGINT NOT NULL,
    source         TEXT NOT NULL,
    ledgers_read   BIGINT NOT NULL,
    bytes_read     BIGINT NOT NULL,
    transactions   BIGINT NOT NULL,
    transactions_decoded BIGINT NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ledger_replays_run_idx ON recon.ledger_replays (domain, run_id);
COMMENT ON TABLE recon.ledger_replays IS 'Ledger ranges replayed from getLedgers metadata, per run and partition, with what was read.';
COMMENT ON COLUMN recon.ledger_replays.replay_id IS 'Identity of the replay.';
COMMENT ON COLUMN recon.ledger_replays.domain IS 'Domain whose run replayed.';
COMMENT ON COLUMN recon.ledger_replays.purpose IS 'The asset that replayed, e.g. lending_events, chain_streams, a plan asset.';
COMMENT ON COLUMN recon.ledger_replays.run_id IS 'The run that replayed.';
COMMENT ON COLUMN recon.ledger_replays.partition_keys IS 'Partitions the replay served (empty for unpartitioned runs).';
COMMENT ON COLUMN recon.ledger_replays.start_ledger IS 'First ledger replayed.';
COMMENT ON COLUMN recon.ledger_replays.end_ledger IS 'Ledger after the last one replayed (exclusive).';
COMMENT ON COLUMN recon.ledger_replays.source IS 'getLedgers, or getLedgers+getEvents when the range reached into getEvents''s window.';
COMMENT ON COLUMN recon.ledger_replays.ledgers_read IS 'Ledgers whose metadata was read.';
COMMENT ON COLUMN recon.ledger_replays.bytes_read IS 'Bytes of ledger metadata and headers received (decoded from base64).';
COMMENT ON COLUMN recon.ledger_replays.transactions IS 'Transactions in the ledgers read.';
COMMENT ON COLUMN recon.ledger_replays.transactions_decoded IS 'Transactions decoded because they touch a watched contract.';
COMMENT ON COLUMN recon.ledger_replays.recorded_at IS 'When the replay was recorded.';

CREATE TABLE recon.ledger_problems (
    replay_id       BIGINT NOT NULL REFERENCES recon.ledger_replays (replay_id) ON DELETE CASCADE,
    ledger_sequence BIGINT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('missing', 'broken_chain', 'undecodable')),
    ledgers         INTEGER NOT NULL DEFAULT 1,
    detail          TEXT NOT NULL
);
CREATE INDEX ledger_problems_replay_idx ON recon.ledger_problems (replay_id);
COMMENT ON TABLE recon.ledger_problems IS 'Gaps, hash-chain breaks and unparsable metadata met by a replay; each is also a CHAIN_READ_ERROR finding on entity ledger_<sequence>.';
COMMENT ON COLUMN recon.ledger_problems.replay_id IS 'The replay that met the problem.';
COMMENT ON COLUMN recon.ledger_problems.ledger_sequence IS 'The ledger (for missing: the first of the gap).';
COMMENT ON COLUMN recon.ledger_problems.kind IS 'missing (getLedgers left it out), broken_chain (its hashes do not link to the ledger before), undecodable (its metadata does not parse).';
COMMENT ON COLUMN recon.ledger_problems.ledgers IS 'How many ledgers the problem covers (a gap: how many are missing from ledger_sequence on).';
COMMENT ON COLUMN recon.ledger_problems.detail IS 'What was wrong, in words.';
