-- What one run persisted per domain: its status, coverage and the findings stored.
SELECT r.domain,
       r.status,
       r.entities_checked,
       r.entities_unchecked,
       (SELECT count(*) FROM recon.discrepancies AS d WHERE d.run_id = r.run_id AND d.domain = r.domain) AS findings
FROM recon.runs AS r
WHERE r.run_id = :run_id
ORDER BY r.domain
