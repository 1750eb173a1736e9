-- The whole Dagster run ended without finishing these domains (it failed, was killed, or ended
-- without running their last steps): each still 'running' row becomes 'failed'.
UPDATE recon.runs
SET status = 'failed', finished_at = :finished_at, error = :error
WHERE run_id = :run_id AND status = 'running'
RETURNING domain
