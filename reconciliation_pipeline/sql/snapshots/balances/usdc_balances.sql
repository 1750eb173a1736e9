-- Database side of the USDC balances reconciliation: one row per user with a wallet.
-- A NULL or blank wallet is no wallet: those users are counted (users_without_wallet.sql),
-- never queried. The core applies the scope's filters (what changed on updated_at, users
-- named by id or by wallet) and orders by the id, the order their entries are read in.
SELECT id                 AS user_id,
       wallet_address,
       usdc_balance::text AS usdc_balance,
       updated_at
FROM users
WHERE NULLIF(btrim(wallet_address), '') IS NOT NULL
