SELECT domain, drift_class, severity, count(*) AS findings
FROM recon.discrepancies
WHERE run_id = ANY(CAST(:run_ids AS text[]))
GROUP BY domain, drift_class, severity
ORDER BY domain, drift_class, severity
