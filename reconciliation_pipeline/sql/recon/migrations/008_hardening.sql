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
