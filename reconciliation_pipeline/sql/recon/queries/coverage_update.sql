-- Entities known before: when last known and, if this run compared them, when last checked.
-- An entity the run could not check keeps the time it was last checked.
UPDATE recon.entity_coverage AS c
SET last_known_at   = :seen_at,
    last_checked_at = CASE WHEN s.checked THEN CAST(:seen_at AS timestamptz) ELSE c.last_checked_at END,
    last_run_id     = :run_id
FROM coverage_seen AS s
WHERE c.domain = :domain AND c.entity_type = s.entity_type AND c.entity_id = s.entity_id
