-- Entities of one type with unresolved incidents in a domain: an incremental
-- run re-checks them whatever its watermark says, so their incidents can resolve.
SELECT DISTINCT entity_id
FROM recon.drift_incidents
WHERE domain = :domain
  AND entity_type = :entity_type
  AND state <> 'resolved'
ORDER BY entity_id
