SELECT ledger_sequence, ledger_hash, closed_at
FROM recon.ledgers
WHERE ledger_sequence = ANY(CAST(:ledgers AS bigint[]))
