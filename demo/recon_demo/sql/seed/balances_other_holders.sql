-- Users with a wallet that the balances world did not seed (other domains' demo
-- users), so the demo can give them matching USDC state on chain.
SELECT id::text AS user_id, wallet_address, usdc_balance::text AS usdc_balance
FROM users
WHERE NULLIF(btrim(wallet_address), '') IS NOT NULL
  AND NOT (id = ANY(CAST(:seeded_ids AS bigint[])))
ORDER BY id
