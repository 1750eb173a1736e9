-- Database side of the reputation reconciliation, in canonical columns. No creation
-- time (no created_at): every score is compared with the contract's current one.
SELECT address,
       score::text AS score,
       updated_at
FROM reputation
