INSERT INTO recon.entry_origins (ledger_key, ledger_sequence, tx_hash, transaction_index, operation_index, change)
SELECT * FROM unnest(CAST(:ledger_keys AS text[]), CAST(:ledgers AS bigint[]), CAST(:tx_hashes AS text[]),
                     CAST(:transaction_indexes AS integer[]), CAST(:operation_indexes AS integer[]),
                     CAST(:changes AS text[]))
ON CONFLICT (ledger_key, ledger_sequence) DO UPDATE
SET tx_hash = EXCLUDED.tx_hash, transaction_index = EXCLUDED.transaction_index,
    operation_index = EXCLUDED.operation_index, change = EXCLUDED.change, looked_up_at = now()
