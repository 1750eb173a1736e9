COPY liquidity_positions (provider_address, deposited, shares, updated_at) FROM STDIN
