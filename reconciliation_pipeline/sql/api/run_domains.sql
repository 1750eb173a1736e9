-- What one Dagster run recorded per domain.
SELECT domain, job_name, partition_key, status, dry_run, started_at, finished_at, ledger_sequence, db_snapshot_at,
       entities_checked, entities_unchecked, finding_counts, repairs_planned, repairs_applied, repairs_skipped,
       repairs_failed, in_flight
FROM recon.runs
WHERE run_id = :run_id
ORDER BY domain
