COPY users (id, username, wallet_address, usdc_balance) FROM STDIN
