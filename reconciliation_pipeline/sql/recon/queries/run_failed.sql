-- A domain's step failed: its run is 'failed' with the reason (a finished run stays as it is).
UPDATE recon.runs
SET status = 'failed', finished_at = :finished_at, error = :error
WHERE run_id = :run_id AND domain = :domain AND status = 'running'
RETURNING domain
