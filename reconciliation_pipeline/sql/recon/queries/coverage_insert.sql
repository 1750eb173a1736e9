-- Entities this run knew of first.
INSERT INTO recon.entity_coverage (domain, entity_type, entity_id, first_known_at, last_known_at, last_checked_at,
                                   last_run_id)
SELECT :domain, s.entity_type, s.entity_id, :seen_at, :seen_at,
       CASE WHEN s.checked THEN CAST(:seen_at AS timestamptz) END, :run_id
FROM coverage_seen AS s
WHERE NOT EXISTS (SELECT 1 FROM recon.entity_coverage AS c
                  WHERE c.domain = :domain AND c.entity_type = s.entity_type AND c.entity_id = s.entity_id)
