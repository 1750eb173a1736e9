-- The findings are persisted: the run's outcome is known. It is the run's status at once when no
-- step follows (steps_pending = 0); otherwise the last of those steps sets it (run_step_finished.sql).
UPDATE recon.runs
SET outcome = :status,
    steps_pending = :steps_pending,
    status = CASE WHEN :steps_pending = 0 THEN :status ELSE 'running' END,
    finished_at = CASE WHEN :steps_pending = 0 THEN CAST(:finished_at AS timestamptz) END,
    entities_checked = :entities_checked,
    entities_unchecked = :entities_unchecked,
    finding_counts = CAST(:finding_counts AS jsonb),
    in_flight = :in_flight
WHERE run_id = :run_id AND domain = :domain
