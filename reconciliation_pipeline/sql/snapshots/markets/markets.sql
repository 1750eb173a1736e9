-- Database side of the markets reconciliation, in canonical columns: one row per
-- market. Liquidity is cast to text so it reaches Python as exact integers.
SELECT id                       AS market_id,
       title,
       contract_address,
       lower(status)            AS status,
       winning_outcome::integer AS winning_outcome,
       yes_liquidity::text      AS yes_liquidity,
       no_liquidity::text       AS no_liquidity,
       updated_at
FROM markets
