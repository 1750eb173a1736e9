SELECT run_id, domain, status, entities_checked, entities_unchecked, finding_counts
FROM recon.runs
WHERE run_id = ANY(:run_ids)
ORDER BY started_at, domain
