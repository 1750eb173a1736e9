-- Record the close time of each looked-up ledger on the incidents that changed at it.
UPDATE recon.drift_incidents AS i
SET chain_changed_at = t.closed_at
FROM unnest(CAST(:ledgers AS bigint[]), CAST(:closed_at AS timestamptz[])) AS t(ledger, closed_at)
WHERE i.domain = :domain
  AND i.state <> 'resolved'
  AND i.chain_changed_ledger = t.ledger
  AND i.chain_changed_at IS NULL
