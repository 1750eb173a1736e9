-- One of the steps after the findings ended; the last of them gives the run its outcome.
UPDATE recon.runs
SET steps_pending = steps_pending - 1,
    status = CASE WHEN steps_pending = 1 THEN outcome ELSE status END,
    finished_at = CASE WHEN steps_pending = 1 THEN :finished_at ELSE finished_at END
WHERE run_id = :run_id AND domain = :domain AND status = 'running' AND steps_pending > 0
