TRUNCATE loans, transactions, liquidity_positions, reputation RESTART IDENTITY
