-- The chain-change ledgers of a domain's unresolved incidents whose close time is not known yet, newest first.
SELECT chain_changed_ledger
FROM recon.drift_incidents
WHERE domain = :domain
  AND state <> 'resolved'
  AND chain_changed_ledger IS NOT NULL
  AND chain_changed_at IS NULL
GROUP BY chain_changed_ledger
ORDER BY max(first_seen_at) DESC
LIMIT :limit
