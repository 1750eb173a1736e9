-- One statement for a whole batch of decoded events (arrays of equal length).
INSERT INTO recon.lending_events (event_id, partition_key, contract_id, ledger, ledger_closed_at, tx_hash,
                                  event_type, loan_id, address, amount, loan_status, topic_xdr, value_xdr,
                                  decode_error, indexed_run_id)
SELECT e.event_id, e.partition_key, e.contract_id, e.ledger, e.ledger_closed_at, e.tx_hash,
       e.event_type, CAST(e.loan_id AS numeric), e.address, CAST(e.amount AS numeric), e.loan_status,
       CAST(e.topic_xdr AS jsonb), e.value_xdr, e.decode_error, :run_id
FROM unnest(CAST(:event_ids AS text[]), CAST(:partition_keys AS text[]), CAST(:contract_ids AS text[]),
            CAST(:ledgers AS bigint[]), CAST(:ledger_closed_ats AS timestamptz[]), CAST(:tx_hashes AS text[]),
            CAST(:event_types AS text[]), CAST(:loan_ids AS text[]), CAST(:addresses AS text[]),
            CAST(:amounts AS text[]), CAST(:loan_statuses AS text[]), CAST(:topic_xdrs AS text[]),
            CAST(:value_xdrs AS text[]), CAST(:decode_errors AS text[]))
     AS e(event_id, partition_key, contract_id, ledger, ledger_closed_at, tx_hash, event_type, loan_id,
          address, amount, loan_status, topic_xdr, value_xdr, decode_error)
