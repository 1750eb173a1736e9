-- Indexed loan_created events emitted by the given transactions: how a
-- provisional loan's submitted hash finds its real on-chain id.
SELECT tx_hash,
       loan_id::text AS loan_id,
       event_id,
       ledger
FROM recon.lending_events
WHERE event_type = 'loan_created'
  AND decode_error IS NULL
  AND tx_hash = ANY(CAST(:tx_hashes AS text[]))
ORDER BY event_id
