-- Entities this run checked: what was in flight for them is settled one way or the other.
DELETE FROM recon.in_flight AS f
USING unnest(CAST(:entity_types AS text[]), CAST(:entity_ids AS text[])) AS c(entity_type, entity_id)
WHERE f.domain = :domain
  AND f.entity_type = c.entity_type
  AND f.entity_id = c.entity_id
