-- Ledgers with open incidents (entity ledger_<sequence>) that this run's replays, or the
-- replays recorded for its partitions, read: they were checked, and resolve if no problem
-- was met in them this time.
SELECT DISTINCT i.entity_id
FROM recon.drift_incidents AS i
CROSS JOIN LATERAL (SELECT CAST(substring(i.entity_id FROM 8) AS bigint) AS sequence) AS l
JOIN recon.ledger_replays AS r
  ON r.domain = i.domain AND l.sequence >= r.start_ledger AND l.sequence < r.end_ledger
WHERE i.domain = :domain
  AND i.entity_type = 'ledger'
  AND i.entity_id ~ '^ledger_[0-9]+$'
  AND i.state <> 'resolved'
  AND (r.run_id = :run_id OR r.partition_keys && CAST(:partition_keys AS text[]))
