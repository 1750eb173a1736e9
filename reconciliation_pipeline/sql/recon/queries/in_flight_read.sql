-- Findings an earlier run of the domain saw in flight and no run has checked since.
SELECT entity_type, entity_id, field, drift_class
FROM recon.in_flight
WHERE domain = :domain
  AND run_id <> :run_id
