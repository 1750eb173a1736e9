-- The runs' CRITICAL findings one by one, with the money each puts at stake.
SELECT domain, entity_type, entity_id, field, drift_class, db_value, chain_value,
       amount_at_stake, asset_code, asset_contract_id, asset_decimals
FROM recon.discrepancies
WHERE run_id = ANY(CAST(:run_ids AS text[])) AND severity = 'CRITICAL'
ORDER BY domain, entity_id, field
LIMIT :limit
