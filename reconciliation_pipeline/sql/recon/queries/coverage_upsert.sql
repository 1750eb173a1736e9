-- Every entity this run knew of: when it was last known and, if the run
-- compared it, when it was last checked. An entity the run could not check
-- keeps the time it was last checked.
INSERT INTO recon.entity_coverage AS c (domain, entity_type, entity_id, first_known_at, last_known_at,
                                        last_checked_at, last_run_id)
SELECT :domain, e.entity_type, e.entity_id, :seen_at, :seen_at,
       CASE WHEN e.checked THEN CAST(:seen_at AS timestamptz) END, :run_id
FROM unnest(CAST(:entity_types AS text[]), CAST(:entity_ids AS text[]), CAST(:checked AS boolean[]))
     AS e(entity_type, entity_id, checked)
ON CONFLICT (domain, entity_type, entity_id) DO UPDATE
SET last_known_at   = EXCLUDED.last_known_at,
    last_checked_at = coalesce(EXCLUDED.last_checked_at, c.last_checked_at),
    last_run_id     = EXCLUDED.last_run_id
