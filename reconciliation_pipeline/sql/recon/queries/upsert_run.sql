-- The findings step's row: created if the run's first step did not (a run outside the factory),
-- else kept with its first step's start time.
INSERT INTO recon.runs (run_id, domain, job_name, partition_key, started_at, status,
                        ledger_sequence, db_snapshot_at)
VALUES (:run_id, :domain, :job_name, :partition_key, :started_at, 'running',
        :ledger_sequence, :db_snapshot_at)
ON CONFLICT (run_id, domain) DO UPDATE
SET status = 'running',
    job_name = EXCLUDED.job_name,
    partition_key = EXCLUDED.partition_key,
    finished_at = NULL,
    ledger_sequence = EXCLUDED.ledger_sequence,
    db_snapshot_at = EXCLUDED.db_snapshot_at
