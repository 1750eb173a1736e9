-- The runs' findings by severity (CRITICAL first), domain and drift class.
SELECT severity, domain, drift_class, count(*) AS findings
FROM recon.discrepancies
WHERE run_id = ANY(CAST(:run_ids AS text[]))
GROUP BY severity, domain, drift_class
ORDER BY recon.severity_rank(severity), domain, drift_class
