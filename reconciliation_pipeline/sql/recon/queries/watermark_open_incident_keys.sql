-- Entities of one type with unresolved incidents, or findings in flight, in a domain: an
-- incremental run re-checks them whatever its watermark says, so their incidents can
-- resolve and what was in flight is compared again.
SELECT entity_id
FROM recon.drift_incidents
WHERE domain = :domain
  AND entity_type = :entity_type
  AND state <> 'resolved'
UNION
SELECT entity_id
FROM recon.in_flight
WHERE domain = :domain
  AND entity_type = :entity_type
ORDER BY entity_id
