-- Incidents that may alert now: unresolved, not exempt, not acknowledged beyond
-- :now, alerting before confirmation only in severities an `immediately` route
-- takes, touched since the sensor's cursor (minus an overlap for runs that
-- committed late; or their acknowledgement ran out since), and whose current
-- occurrence has not reached every channel yet (a failed channel is retried
-- until :max_attempts). The routes decide the rest. The latest finding's
-- details come along, and the previous occurrence's alert (the suppression
-- interval counts from it).
SELECT i.incident_id, i.occurrences AS occurrence, i.domain, i.entity_type, i.entity_id, i.field,
       i.drift_class, i.severity, i.state, i.first_seen_at, i.last_seen_at, i.confirmed_at,
       i.consecutive_runs, i.last_run_id, i.last_db_value, i.last_chain_value,
       i.last_delta::text AS last_delta, i.asset_code, i.asset_issuer, i.asset_contract_id,
       i.amount_at_stake::text AS amount_at_stake,
       coalesce(d.details, '{}'::jsonb) AS details,
       coalesce(a.sinks, '{}') AS sinks,
       coalesce(a.attempts, 0) AS attempts,
       p.route AS previous_route,
       p.sent_at AS previous_sent_at
FROM recon.drift_incidents AS i
LEFT JOIN recon.alerts AS a
       ON a.incident_id = i.incident_id AND a.occurrence = i.occurrences AND a.kind = 'trigger'
LEFT JOIN LATERAL (
    SELECT f.details
    FROM recon.discrepancies AS f
    WHERE f.run_id = i.last_run_id AND f.domain = i.domain AND f.entity_type = i.entity_type
      AND f.entity_id = i.entity_id AND f.field = i.field AND f.drift_class = i.drift_class
    ORDER BY f.discrepancy_id DESC
    LIMIT 1
) AS d ON true
LEFT JOIN LATERAL (
    SELECT e.route, coalesce(e.sent_at, e.last_attempt_at) AS sent_at
    FROM recon.alerts AS e
    WHERE e.incident_id = i.incident_id AND e.kind = 'trigger' AND e.occurrence < i.occurrences
      AND cardinality(e.sinks) > 0
    ORDER BY e.occurrence DESC
    LIMIT 1
) AS p ON true
WHERE i.state <> 'resolved'
  AND i.exempt_rule_id IS NULL
  AND (i.acknowledged_until IS NULL OR i.acknowledged_until <= CAST(:now AS timestamptz))
  AND (i.severity = ANY(CAST(:immediate_severities AS text[])) OR i.state = 'confirmed')
  AND (i.last_seen_at >= CAST(:since AS timestamptz)
       OR i.confirmed_at >= CAST(:since AS timestamptz)
       OR i.acknowledged_until BETWEEN CAST(:since AS timestamptz) AND CAST(:now AS timestamptz))
  AND (a.alert_id IS NULL OR (a.status = 'failed' AND a.attempts < :max_attempts))
ORDER BY i.last_seen_at, i.incident_id
LIMIT :max_alerts
