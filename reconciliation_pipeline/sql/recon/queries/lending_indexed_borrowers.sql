-- Borrowers the indexed loan_created events name, as of the end of a window.
SELECT DISTINCT address AS key
FROM recon.lending_events
WHERE event_type = 'loan_created'
  AND decode_error IS NULL
  AND ledger_closed_at < :window_end
