"""Users' USDC balances: the database's `users.usdc_balance` against trustlines and SAC balances."""
