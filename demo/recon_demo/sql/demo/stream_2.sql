SELECT entity_id, field, drift_class, db_value, chain_value, delta, ledger_sequence
FROM recon.discrepancies
WHERE run_id = ANY(CAST(:run_ids AS text[])) AND domain = 'streams' AND entity_id = 'stream_2'
ORDER BY discrepancy_id
LIMIT 1
