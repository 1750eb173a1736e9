-- Entities of a domain with unresolved incidents: the only ones a run can resolve,
-- so only they are sent to resolve_incidents.sql (not every entity checked).
SELECT DISTINCT entity_type, entity_id
FROM recon.drift_incidents
WHERE domain = :domain
  AND state <> 'resolved'
