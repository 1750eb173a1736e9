-- Rows still 'running' that started before :before (the unfinished-run sensor looks their runs up).
SELECT run_id, domain, job_name, partition_key, started_at
FROM recon.runs
WHERE status = 'running' AND started_at < :before
ORDER BY started_at
LIMIT :limit
