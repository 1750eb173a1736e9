-- Where each domain's incremental (every-5-minutes) reconciliation left off:
-- the last chain ledger whose events it scanned and the time of its database
-- snapshot. The next run reads only what changed since; the nightly full sweep
-- neither reads nor moves it.

CREATE TABLE recon.sweep_watermarks (
    domain          TEXT NOT NULL,
    scope           TEXT NOT NULL,                 -- the entity type the watermark covers, e.g. stream
    ledger_sequence BIGINT NOT NULL,               -- chain events up to this ledger have been scanned
    db_watermark    TIMESTAMPTZ NOT NULL,          -- database rows updated before this were compared
    run_id          TEXT NOT NULL,                 -- the run that moved it
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, scope)
);
COMMENT ON TABLE recon.sweep_watermarks IS 'Per (domain, scope): the ledger and database time up to which the incremental reconciliation has looked.';
