-- Incidents due an alert: unresolved, routed now (immediate severities at once,
-- the others once confirmed), touched since the sensor's cursor (minus an
-- overlap for runs that committed late), and whose current occurrence has no
-- delivered alert yet (a failed delivery is retried until :max_attempts).
-- The latest finding's details (e.g. a market's title and contract) come along.
SELECT i.incident_id, i.occurrences AS occurrence, i.domain, i.entity_type, i.entity_id, i.field,
       i.drift_class, i.severity, i.state, i.first_seen_at, i.last_seen_at, i.confirmed_at,
       i.consecutive_runs, i.last_run_id, i.last_db_value, i.last_chain_value,
       i.last_delta::text AS last_delta,
       coalesce(d.details, '{}'::jsonb) AS details,
       coalesce(a.attempts, 0) AS attempts
FROM recon.drift_incidents AS i
LEFT JOIN recon.alerts AS a ON a.incident_id = i.incident_id AND a.occurrence = i.occurrences
LEFT JOIN LATERAL (
    SELECT f.details
    FROM recon.discrepancies AS f
    WHERE f.run_id = i.last_run_id AND f.domain = i.domain AND f.entity_type = i.entity_type
      AND f.entity_id = i.entity_id AND f.field = i.field AND f.drift_class = i.drift_class
    ORDER BY f.discrepancy_id DESC
    LIMIT 1
) AS d ON true
WHERE i.state <> 'resolved'
  AND (i.severity = ANY(CAST(:immediate_severities AS text[])) OR i.state = 'confirmed')
  AND i.last_seen_at >= CAST(:since AS timestamptz)
  AND (a.alert_id IS NULL OR (a.status = 'failed' AND a.attempts < :max_attempts))
ORDER BY i.last_seen_at, i.incident_id
LIMIT :max_alerts
