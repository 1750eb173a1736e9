-- A run that persisted no findings (a streaks backfill recomputes only): its outcome, and why.
UPDATE recon.runs
SET outcome = :outcome,
    status_note = :note,
    steps_pending = :steps_pending,
    status = CASE WHEN :steps_pending = 0 THEN :outcome ELSE 'running' END,
    finished_at = CASE WHEN :steps_pending = 0 THEN CAST(:finished_at AS timestamptz) END
WHERE run_id = :run_id AND domain = :domain
