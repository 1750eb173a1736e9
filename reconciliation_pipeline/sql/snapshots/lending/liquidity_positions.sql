-- Database side of the liquidity positions reconciliation, in canonical columns.
-- The table keeps no creation time (no created_at), so every position is compared
-- with the contract's current Position(Address) entry.
SELECT provider_address AS provider,
       deposited::text  AS deposited,
       shares::text     AS shares,
       updated_at
FROM liquidity_positions
