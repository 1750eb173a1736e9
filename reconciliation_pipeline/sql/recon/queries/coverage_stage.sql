-- The entities one run knew of, staged for the two statements that record them (dropped at commit).
CREATE TEMPORARY TABLE coverage_seen (entity_type text NOT NULL, entity_id text NOT NULL, checked boolean NOT NULL)
ON COMMIT DROP
