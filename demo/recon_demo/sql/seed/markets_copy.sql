COPY markets (id, title, contract_address, status, winning_outcome, yes_liquidity, no_liquidity, updated_at) FROM STDIN
