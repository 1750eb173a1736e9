INSERT INTO recon.runs (run_id, domain, job_name, partition_key, started_at, status,
                        ledger_sequence, db_snapshot_at)
VALUES (:run_id, :domain, :job_name, :partition_key, :started_at, 'running',
        :ledger_sequence, :db_snapshot_at)
ON CONFLICT (run_id, domain) DO UPDATE
SET started_at = EXCLUDED.started_at,
    status = 'running',
    finished_at = NULL,
    ledger_sequence = EXCLUDED.ledger_sequence,
    db_snapshot_at = EXCLUDED.db_snapshot_at
