-- The indexed loan_created events of the given loans: the transaction that created
-- each and when (what an insert repair records for a loan the app never wrote).
SELECT DISTINCT ON (loan_id)
       loan_id::text    AS loan_id,
       tx_hash          AS created_tx_hash,
       ledger_closed_at AS created_at
FROM recon.lending_events
WHERE event_type = 'loan_created'
  AND decode_error IS NULL
  AND loan_id = ANY (CAST(:loan_ids AS numeric[]))
ORDER BY loan_id, ledger, event_id
