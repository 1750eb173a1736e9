INSERT INTO recon.ledgers (ledger_sequence, ledger_hash, closed_at)
SELECT * FROM unnest(CAST(:ledgers AS bigint[]), CAST(:hashes AS text[]), CAST(:closed_ats AS timestamptz[]))
ON CONFLICT (ledger_sequence) DO UPDATE
SET ledger_hash = EXCLUDED.ledger_hash, closed_at = EXCLUDED.closed_at, fetched_at = now()
