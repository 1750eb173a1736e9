-- Hardening (issue 11).
-- A stored repair that does not match the plan it claims to be is refused, and nothing runs.
ALTER TABLE recon.repairs DROP CONSTRAINT repairs_state_check;
ALTER TABLE recon.repairs ADD CONSTRAINT repairs_state_check
    CHECK (state IN ('planned', 'applied', 'skipped', 'failed', 'refused'));
ALTER TABLE recon.repair_audit DROP CONSTRAINT repair_audit_action_check;
ALTER TABLE recon.repair_audit ADD CONSTRAINT repair_audit_action_check
    CHECK (action IN ('applied', 'skipped', 'failed', 'refused'));
ALTER TABLE recon.runs ADD COLUMN repairs_refused INTEGER NOT NULL DEFAULT 0;

