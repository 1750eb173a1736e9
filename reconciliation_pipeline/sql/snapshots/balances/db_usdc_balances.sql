-- Database side of the USDC balances reconciliation: users with a wallet, in
-- user-id order (the order their chain entries are read in). A NULL or blank
-- wallet is no wallet: those users are counted, never queried.
SELECT id::text           AS user_id,
       wallet_address,
       usdc_balance::text AS usdc_balance,
       updated_at
FROM users
WHERE NULLIF(btrim(wallet_address), '') IS NOT NULL
ORDER BY id
