-- Loans the indexed loan_created events say exist, as of the end of a window:
-- how the chain side learns of loans the database never recorded.
SELECT loan_id::text AS loan_id,
       address       AS borrower,
       tx_hash       AS created_tx_hash,
       ledger_closed_at AS created_at
FROM recon.lending_events
WHERE event_type = 'loan_created'
  AND decode_error IS NULL
  AND ledger_closed_at < :window_end
ORDER BY ledger, event_id
