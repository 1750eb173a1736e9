-- The incidents this run saw take the exemption their latest values match now:
-- a rule in force, or none once it expired or was revoked.
UPDATE recon.drift_incidents AS i
SET exempt_rule_id = m.rule_id
FROM (
    SELECT incident_id,
           recon.matching_exemption(domain, entity_id, field, drift_class, last_delta,
                                    CAST(:seen_at AS timestamptz)) AS rule_id
    FROM recon.drift_incidents
    WHERE domain = :domain AND last_run_id = :run_id
) AS m
WHERE i.incident_id = m.incident_id
  AND i.exempt_rule_id IS DISTINCT FROM m.rule_id
