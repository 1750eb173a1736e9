-- Database side of the reputation reconciliation, in canonical columns.
SELECT address,
       score::text AS score,
       updated_at
FROM reputation
ORDER BY address
