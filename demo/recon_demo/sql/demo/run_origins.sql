-- The transaction each finding of these runs names as the writer of its chain value.
SELECT DISTINCT domain, entity_type, entity_id, field, drift_class, details->'origin'->>'tx_hash' AS tx_hash
FROM recon.discrepancies
WHERE run_id = ANY(CAST(:run_ids AS text[]))
  AND details ? 'origin'
