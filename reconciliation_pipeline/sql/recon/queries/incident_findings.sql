-- The incident's findings in its latest run.
SELECT d.discrepancy_id, d.run_id, d.detected_at, d.partition_key, d.db_value, d.chain_value, d.delta::text AS delta,
       d.ledger_sequence, d.exempt_rule_id, d.amount_at_stake::text AS amount_at_stake, d.details
FROM recon.drift_incidents AS i
JOIN recon.discrepancies AS d
  ON d.run_id = i.last_run_id AND d.domain = i.domain AND d.entity_type = i.entity_type
     AND d.entity_id = i.entity_id AND d.field = i.field AND d.drift_class = i.drift_class
WHERE i.incident_id = :incident_id
ORDER BY d.discrepancy_id
