-- Resolved incidents whose current occurrence alerted (some channel took it)
-- and whose resolved notice has not reached every one of those channels yet,
-- resolved since the sensor's cursor (minus the overlap).
SELECT i.incident_id, i.occurrences AS occurrence, i.domain, i.entity_type, i.entity_id, i.field,
       i.drift_class, i.severity, i.state, i.first_seen_at, i.last_seen_at, i.consecutive_runs, i.last_run_id,
       i.last_db_value, i.last_chain_value, i.last_delta::text AS last_delta, i.asset_code, i.asset_issuer,
       i.asset_contract_id, i.amount_at_stake::text AS amount_at_stake, i.resolution, i.resolution_note,
       i.resolved_run_id, '{}'::jsonb AS details,
       t.route AS trigger_route,
       t.sinks AS trigger_sinks,
       coalesce(r.sinks, '{}') AS sinks,
       coalesce(r.attempts, 0) AS attempts
FROM recon.drift_incidents AS i
JOIN recon.alerts AS t
  ON t.incident_id = i.incident_id AND t.occurrence = i.occurrences AND t.kind = 'trigger'
     AND cardinality(t.sinks) > 0
LEFT JOIN recon.alerts AS r
       ON r.incident_id = i.incident_id AND r.occurrence = i.occurrences AND r.kind = 'resolve'
WHERE i.state = 'resolved'
  AND i.resolved_at >= CAST(:since AS timestamptz)
  AND (r.alert_id IS NULL OR (r.status = 'failed' AND r.attempts < :max_attempts))
ORDER BY i.resolved_at, i.incident_id
LIMIT :max_alerts
