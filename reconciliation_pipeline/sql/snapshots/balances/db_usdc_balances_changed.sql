-- The users an incremental balances run compares, in user-id order: rows the app
-- wrote since :since, users named by id (open incidents), and users whose wallet
-- the USDC SAC's movement events named. Same columns as db_usdc_balances.sql.
SELECT id::text           AS user_id,
       wallet_address,
       usdc_balance::text AS usdc_balance,
       updated_at
FROM users
WHERE NULLIF(btrim(wallet_address), '') IS NOT NULL
  AND (updated_at > :since
       OR id = ANY (CAST(:ids AS bigint[]))
       OR wallet_address = ANY (CAST(:wallets AS text[])))
ORDER BY id
