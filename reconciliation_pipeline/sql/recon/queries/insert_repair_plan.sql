-- Planning is idempotent: the same (entity, field, observed, target) is one repair.
INSERT INTO recon.repairs (idempotency_key, run_id, domain, entity_type, entity_id, entity_key, field,
                           repair_query, observed_value, target_value, state)
VALUES (:idempotency_key, :run_id, :domain, :entity_type, :entity_id, :entity_key, :field,
        :repair_query, :observed_value, :target_value, 'planned')
ON CONFLICT (idempotency_key) DO NOTHING
