SELECT incident_id, domain, entity_type, entity_id, field, drift_class, severity, state, first_seen_at,
       last_seen_at, confirmed_at, resolved_at, first_run_id, last_run_id, consecutive_runs, occurrences,
       last_db_value, last_chain_value, last_delta::text AS last_delta, acknowledged_until, acknowledged_by,
       exempt_rule_id, resolution, resolved_by, resolution_note, asset_code, asset_issuer, asset_contract_id,
       asset_decimals, amount_at_stake::text AS amount_at_stake, chain_changed_at
FROM recon.drift_incidents
WHERE incident_id = :incident_id
