-- Users the balances reconciliation skips: no wallet (NULL or blank).
SELECT count(*) FROM users WHERE NULLIF(btrim(wallet_address), '') IS NULL
