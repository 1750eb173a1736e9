-- A run that compared nothing (a streaks backfill recomputes only): its outcome without findings.
UPDATE recon.runs
SET outcome = :outcome,
    steps_pending = :steps_pending,
    status = CASE WHEN :steps_pending = 0 THEN :outcome ELSE 'running' END,
    finished_at = CASE WHEN :steps_pending = 0 THEN CAST(:finished_at AS timestamptz) END
WHERE run_id = :run_id AND domain = :domain
