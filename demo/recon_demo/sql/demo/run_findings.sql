SELECT DISTINCT domain, entity_type, entity_id, field, drift_class, severity
FROM recon.discrepancies
WHERE run_id = ANY(CAST(:run_ids AS text[]))
