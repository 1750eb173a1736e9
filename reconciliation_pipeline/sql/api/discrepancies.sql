-- Findings, newest first, with their incident's state; every filter optional.
-- Keyset pagination: :after is the last discrepancy_id of the previous page.
SELECT d.discrepancy_id, d.run_id, d.domain, d.entity_type, d.entity_id, d.field, d.drift_class, d.severity, d.status,
       d.db_value, d.chain_value, d.delta::text AS delta, d.ledger_sequence, d.db_snapshot_at, d.partition_key,
       d.details, d.detected_at, d.exempt_rule_id, d.asset_code, d.asset_issuer, d.asset_contract_id,
       d.asset_decimals, d.amount_at_stake::text AS amount_at_stake,
       i.incident_id, i.state AS incident_state
FROM recon.discrepancies AS d
LEFT JOIN recon.drift_incidents AS i
       ON i.domain = d.domain AND i.entity_type = d.entity_type AND i.entity_id = d.entity_id
          AND i.field = d.field AND i.drift_class = d.drift_class
WHERE (CAST(:domain AS text) IS NULL OR d.domain = :domain)
  AND (CAST(:state AS text) IS NULL OR i.state = :state)
  AND (CAST(:severity AS text) IS NULL OR d.severity = :severity)
  AND (CAST(:since AS timestamptz) IS NULL OR d.detected_at >= :since)
  AND (CAST(:run_id AS text) IS NULL OR d.run_id = :run_id)
  AND (CAST(:entity_id AS text) IS NULL OR d.entity_id = :entity_id)
  AND (CAST(:exempt AS boolean) IS NULL OR (d.exempt_rule_id IS NOT NULL) = :exempt)
  AND (CAST(:after AS bigint) IS NULL OR d.discrepancy_id < :after)
ORDER BY d.discrepancy_id DESC
LIMIT :limit
