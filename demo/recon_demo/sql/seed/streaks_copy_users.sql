COPY users (id, username, wallet_address, timezone) FROM STDIN
