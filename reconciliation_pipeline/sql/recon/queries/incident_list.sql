-- Incidents newest first, filtered; unresolved unless a state is asked for, exempt ones only when asked.
SELECT incident_id, domain, entity_type, entity_id, field, drift_class, severity, state, first_seen_at,
       last_seen_at, confirmed_at, resolved_at, consecutive_runs, occurrences, last_db_value, last_chain_value,
       last_delta::text AS last_delta, acknowledged_until, acknowledged_by, exempt_rule_id, resolution,
       resolved_by, asset_code, asset_issuer, asset_contract_id, asset_decimals,
       amount_at_stake::text AS amount_at_stake, chain_changed_at
FROM recon.drift_incidents
WHERE (CAST(:domain AS text) IS NULL OR domain = :domain)
  AND (CASE WHEN CAST(:state AS text) IS NULL THEN state <> 'resolved' ELSE state = :state END)
  AND (CAST(:severity AS text) IS NULL OR severity = :severity)
  AND (CAST(:since AS timestamptz) IS NULL OR last_seen_at >= :since)
  AND (CAST(:include_exempt AS boolean) OR exempt_rule_id IS NULL)
ORDER BY recon.severity_rank(severity), last_seen_at DESC, incident_id DESC
LIMIT :limit
