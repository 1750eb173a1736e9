INSERT INTO recon.in_flight (domain, entity_type, entity_id, field, drift_class, run_id, seen_at)
SELECT :domain, f.entity_type, f.entity_id, f.field, f.drift_class, :run_id, :seen_at
FROM unnest(CAST(:entity_types AS text[]), CAST(:entity_ids AS text[]), CAST(:fields AS text[]),
            CAST(:drift_classes AS text[])) AS f(entity_type, entity_id, field, drift_class)
ON CONFLICT (domain, entity_type, entity_id, field, drift_class) DO UPDATE
SET run_id = EXCLUDED.run_id, seen_at = EXCLUDED.seen_at
