-- The incidents the runs resolved, one by one (what got fixed, and since when it was open).
SELECT i.incident_id, i.domain, i.entity_id, i.field, i.drift_class, i.severity
FROM recon.incident_events AS e
JOIN recon.drift_incidents AS i USING (incident_id)
WHERE e.run_id = ANY(CAST(:run_ids AS text[])) AND e.event = 'resolved'
ORDER BY recon.severity_rank(i.severity), i.domain, i.entity_id, i.field
LIMIT :limit
