-- Seed a user of the balances world; users other domains seeded are left alone.
INSERT INTO users (id, username, wallet_address, usdc_balance, updated_at)
VALUES (:id, :username, :wallet_address, CAST(:usdc_balance AS numeric), now())
ON CONFLICT (id) DO UPDATE
SET username       = EXCLUDED.username,
    wallet_address = EXCLUDED.wallet_address,
    usdc_balance   = EXCLUDED.usdc_balance,
    updated_at     = EXCLUDED.updated_at
