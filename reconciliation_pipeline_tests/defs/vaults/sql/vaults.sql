-- Database side of the vaults reconciliation, in canonical columns: one row per vault.
SELECT id             AS vault_id,
       owner_address  AS owner,
       balance::text  AS balance,
       created_at,
       updated_at
FROM vaults
