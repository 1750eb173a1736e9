INSERT INTO recon.ledger_replays (domain, purpose, run_id, partition_keys, start_ledger, end_ledger, source,
                                  ledgers_read, bytes_read, transactions, transactions_decoded)
VALUES (:domain, :purpose, :run_id, CAST(:partition_keys AS text[]), :start_ledger, :end_ledger, :source,
        :ledgers_read, :bytes_read, :transactions, :transactions_decoded)
RETURNING replay_id
