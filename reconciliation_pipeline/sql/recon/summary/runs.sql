-- Each run's row per domain: what it checked, how it ended, what it did about repairs.
SELECT run_id, domain, job_name, partition_key, status, status_note, error, dry_run,
       entities_checked, entities_unchecked, repairs_planned, repairs_applied, repairs_skipped,
       repairs_failed, repairs_refused
FROM recon.runs
WHERE run_id = ANY(CAST(:run_ids AS text[]))
ORDER BY started_at, domain
