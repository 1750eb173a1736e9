-- The recorded writers of these (entry, last_modified_ledger) pairs, with their ledgers' close times.
SELECT o.ledger_key, o.ledger_sequence, o.tx_hash, o.transaction_index, o.operation_index, o.change,
       l.closed_at
FROM unnest(CAST(:ledger_keys AS text[]), CAST(:ledgers AS bigint[])) AS w(ledger_key, ledger_sequence)
JOIN recon.entry_origins AS o USING (ledger_key, ledger_sequence)
LEFT JOIN recon.ledgers AS l ON l.ledger_sequence = o.ledger_sequence
