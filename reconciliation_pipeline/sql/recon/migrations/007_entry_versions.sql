-- The ledger at which each chain entry was last compared, per (domain, entry kind).
-- The every-5-minutes runs of domains without change events (markets) still
-- read every entry, but an entry whose last_modified_ledger equals the one
-- recorded here, whose database row is unchanged since the watermark and which has
-- no open incident was compared already: it is not decoded or diffed again.
-- A run records the entries it compared; entries it could not read lose their row,
-- so the next run compares them whatever else it knows.

CREATE TABLE recon.entry_versions (
    domain               TEXT NOT NULL,
    entry_kind           TEXT NOT NULL,    -- which entry of the entity: amm_pool, market_instance
    entity_key           TEXT NOT NULL,    -- the spec's key column as text (the market id)
    last_modified_ledger BIGINT NOT NULL,  -- the entry's last_modified_ledger when it was last compared
    run_id               TEXT NOT NULL,    -- the run that compared it
    recorded_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, entry_kind, entity_key)
);
COMMENT ON TABLE recon.entry_versions IS 'Per chain entry: the last_modified_ledger at which the reconciliation last compared it; unchanged entries are skipped by incremental runs.';
