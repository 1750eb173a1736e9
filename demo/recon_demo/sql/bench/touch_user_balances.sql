-- The app writes to every `every`-th user with a wallet: one more base unit (within
-- the balances tolerance) and a new updated_at.
UPDATE users
SET usdc_balance = usdc_balance + 1,
    updated_at = now()
WHERE id % CAST(:every AS bigint) = 1
  AND NULLIF(btrim(wallet_address), '') IS NOT NULL
