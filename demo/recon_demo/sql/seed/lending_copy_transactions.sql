COPY transactions (tx_hash, kind, loan_id, address, amount, status, submitted_at, updated_at) FROM STDIN
