-- A domain's step started: its run's row exists from now on ('running'), never overwritten.
INSERT INTO recon.runs (run_id, domain, job_name, partition_key, started_at, status)
VALUES (:run_id, :domain, :job_name, :partition_key, :started_at, 'running')
ON CONFLICT (run_id, domain) DO NOTHING
