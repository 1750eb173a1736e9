-- What the runs did to incidents, per domain: opened (or reopened), confirmed, resolved.
SELECT i.domain,
       count(*) FILTER (WHERE e.event IN ('opened', 'reopened')) AS opened,
       count(*) FILTER (WHERE e.event = 'confirmed')             AS confirmed,
       count(*) FILTER (WHERE e.event = 'resolved')              AS resolved
FROM recon.incident_events AS e
JOIN recon.drift_incidents AS i USING (incident_id)
WHERE e.run_id = ANY(CAST(:run_ids AS text[]))
GROUP BY i.domain
ORDER BY i.domain
