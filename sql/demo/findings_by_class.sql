SELECT drift_class, severity, count(*) AS findings
FROM recon.discrepancies
WHERE run_id = :run_id
GROUP BY drift_class, severity
ORDER BY drift_class, severity
