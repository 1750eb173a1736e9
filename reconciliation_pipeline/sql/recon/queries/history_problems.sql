-- The history problems a run's findings report: those its own replays met, and (for a
-- partitioned run) those recorded for its partitions by a range run that replayed them.
SELECT DISTINCT p.ledger_sequence, p.kind, p.ledgers, p.detail, r.purpose, r.source
FROM recon.ledger_problems AS p
JOIN recon.ledger_replays AS r USING (replay_id)
WHERE r.domain = :domain
  AND (r.run_id = :run_id OR r.partition_keys && CAST(:partition_keys AS text[]))
ORDER BY p.ledger_sequence, p.kind
