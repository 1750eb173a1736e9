-- Mark this run's findings that a live exemption rule matches; returns their incident keys.
UPDATE recon.discrepancies AS d
SET exempt_rule_id = m.rule_id
FROM (
    SELECT discrepancy_id,
           recon.matching_exemption(domain, entity_id, field, drift_class, delta, CAST(:seen_at AS timestamptz))
               AS rule_id
    FROM recon.discrepancies
    WHERE domain = :domain AND run_id = :run_id
) AS m
WHERE d.discrepancy_id = m.discrepancy_id
  AND m.rule_id IS NOT NULL
RETURNING d.entity_type, d.entity_id, d.field, d.drift_class
