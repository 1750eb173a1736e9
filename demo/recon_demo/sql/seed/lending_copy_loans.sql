COPY loans (id, chain_loan_id, is_provisional, borrower_address, principal, outstanding, status, submitted_tx_hash, created_at, updated_at) FROM STDIN
