SELECT state, count(*) FROM recon.drift_incidents GROUP BY state ORDER BY state
