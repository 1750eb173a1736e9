-- Loans the indexed loan_created events say exist, as of the end of a window: how
-- the chain side learns of loans the database never recorded.
SELECT DISTINCT loan_id AS key
FROM recon.lending_events
WHERE event_type = 'loan_created'
  AND decode_error IS NULL
  AND ledger_closed_at < :window_end
