-- The alert messages sent for the runs' incidents: one per route, run and channel, with the
-- worst severity, the domains and the first entities they name.
SELECT m.message_id, m.channel, m.channel_type, m.kind, m.route, m.status, m.run_id,
       cardinality(m.incident_ids)                                         AS incidents,
       min(recon.severity_rank(i.severity))                                AS worst_rank,
       array_agg(DISTINCT i.domain ORDER BY i.domain)                      AS domains,
       (array_agg(i.entity_id || ' ' || i.drift_class ORDER BY recon.severity_rank(i.severity), i.incident_id))[1:3]
                                                                           AS first_entities
FROM recon.alert_messages AS m
JOIN recon.drift_incidents AS i ON i.incident_id = ANY(m.incident_ids)
WHERE m.run_id = ANY(CAST(:run_ids AS text[]))
GROUP BY m.message_id
ORDER BY worst_rank, m.message_id
