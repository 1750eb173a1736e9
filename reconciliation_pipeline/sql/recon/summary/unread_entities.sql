-- What partial runs could not compare: their CHAIN_READ_ERROR findings, with the reason.
SELECT domain, entity_type, entity_id, coalesce(details ->> 'error', 'not read') AS reason
FROM recon.discrepancies
WHERE run_id = ANY(CAST(:run_ids AS text[])) AND drift_class = 'CHAIN_READ_ERROR'
ORDER BY domain, entity_type, entity_id
LIMIT :limit
