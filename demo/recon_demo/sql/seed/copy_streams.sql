COPY streams (id, sender_address, recipient_address, token_address, total_amount, released_amount, status, created_at, updated_at) FROM STDIN
