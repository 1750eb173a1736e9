-- Hardening (issue 11).
-- A stored repair that does not match the plan it claims to be is refused, and nothing runs.
ALTER TABLE recon.repairs DROP CONSTRAINT repairs_state_check;
ALTER TABLE recon.repairs ADD CONSTRAINT repairs_state_check
    CHECK (state IN ('planned', 'applied', 'skipped', 'failed', 'refused'));
ALTER TABLE recon.repair_audit DROP CONSTRAINT repair_audit_action_check;
ALTER TABLE recon.repair_audit ADD CONSTRAINT repair_audit_action_check
    CHECK (action IN ('applied', 'skipped', 'failed', 'refused'));
ALTER TABLE recon.runs ADD COLUMN repairs_refused INTEGER NOT NULL DEFAULT 0;

-- Per entity read: how many of the database's keys were asked for and how many were missing on
-- chain. The mass-missing guard compares a read with this history; a read it refused is kept
-- (accepted = false) but is never history.
CREATE TABLE recon.chain_reads (
    run_id      TEXT NOT NULL,
    domain      TEXT NOT NULL,
    entity      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    keys        BIGINT NOT NULL,
    missing     BIGINT NOT NULL,
    accepted    BOOLEAN NOT NULL,
    read_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, domain, entity)
);
CREATE INDEX chain_reads_history_idx ON recon.chain_reads (domain, entity, scope, read_at DESC);
COMMENT ON TABLE recon.chain_reads IS 'Per run and entity: keys read from the database''s rows and how many were missing on chain; the mass-missing guard''s history.';

-- A run's row is written when the domain's first step starts ('running') and gets its final
-- status only when its last step ends: outcome is what the findings step concluded
-- (succeeded / partial), steps_pending how many steps after it (repairs, the streak sync) have
-- still to end. A run killed anywhere stays 'running' until the run-failure sensor (or the
-- unfinished-run sensor) marks it 'failed' with the reason in error.
ALTER TABLE recon.runs ADD COLUMN outcome TEXT CHECK (outcome IN ('succeeded', 'partial'));
ALTER TABLE recon.runs ADD COLUMN steps_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recon.runs ADD COLUMN error TEXT;
CREATE INDEX runs_running_idx ON recon.runs (started_at) WHERE status = 'running';

COMMENT ON COLUMN recon.runs.repairs_refused IS 'Stored repairs refused because they differ from this run''s plan (nothing ran).';
COMMENT ON COLUMN recon.runs.outcome IS 'What the findings step concluded (succeeded / partial); the status once every later step ended.';
COMMENT ON COLUMN recon.runs.steps_pending IS 'Steps after the findings step (repairs, the streak sync) this run has still to end.';
COMMENT ON COLUMN recon.runs.error IS 'Why the run failed: the failing step''s error, or what the run-failure / unfinished-run sensor saw.';
COMMENT ON COLUMN recon.chain_reads.run_id IS 'The Dagster run that read.';
COMMENT ON COLUMN recon.chain_reads.domain IS 'The reconciliation domain.';
COMMENT ON COLUMN recon.chain_reads.entity IS 'The entity of the domain''s spec that was read.';
COMMENT ON COLUMN recon.chain_reads.scope IS 'The scope of the read (nightly, incremental, ...): history is per scope.';
COMMENT ON COLUMN recon.chain_reads.keys IS 'Database keys the read asked for and the RPC answered (keys with open incidents left out).';
COMMENT ON COLUMN recon.chain_reads.missing IS 'Of those, keys with no entry on chain.';
COMMENT ON COLUMN recon.chain_reads.accepted IS 'False when the mass-missing guard refused the read (the run failed; not history).';
COMMENT ON COLUMN recon.chain_reads.read_at IS 'When the read was recorded.';
