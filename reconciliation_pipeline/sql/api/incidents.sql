-- Incidents, most recently seen first; every filter optional. Keyset pagination on
-- (last_seen_at, incident_id) would be stable across runs; incident_id is enough for paging here.
SELECT incident_id, domain, entity_type, entity_id, field, drift_class, severity, state, first_seen_at,
       last_seen_at, confirmed_at, resolved_at, first_run_id, last_run_id, consecutive_runs, occurrences,
       last_db_value, last_chain_value, last_delta::text AS last_delta, acknowledged_until, acknowledged_by,
       exempt_rule_id, resolution, resolved_by, resolution_note, asset_code, asset_issuer, asset_contract_id,
       asset_decimals, amount_at_stake::text AS amount_at_stake, chain_changed_at
FROM recon.drift_incidents
WHERE (CAST(:domain AS text) IS NULL OR domain = :domain)
  AND (CAST(:state AS text) IS NULL OR state = :state)
  AND (CAST(:severity AS text) IS NULL OR severity = :severity)
  AND (CAST(:since AS timestamptz) IS NULL OR last_seen_at >= :since)
  AND (CAST(:after AS bigint) IS NULL OR incident_id < :after)
ORDER BY incident_id DESC
LIMIT :limit
