SELECT repair_id, idempotency_key, entity_type, entity_id, entity_key, field, repair_query,
       observed_value, target_value
FROM recon.repairs
WHERE state = 'planned'
  AND idempotency_key = ANY(CAST(:idempotency_keys AS text[]))
ORDER BY repair_id
FOR UPDATE SKIP LOCKED
