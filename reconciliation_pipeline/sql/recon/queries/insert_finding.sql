INSERT INTO recon.discrepancies (run_id, domain, entity_type, entity_id, field, drift_class, severity,
                                 db_value, chain_value, delta, ledger_sequence, db_snapshot_at,
                                 partition_key, details, asset_code, asset_issuer, asset_contract_id,
                                 asset_decimals, amount_at_stake, status)
VALUES (:run_id, :domain, :entity_type, :entity_id, :field, :drift_class, :severity,
        :db_value, :chain_value, CAST(:delta AS numeric), :ledger_sequence, :db_snapshot_at,
        :partition_key, CAST(:details AS jsonb), :asset_code, :asset_issuer, :asset_contract_id,
        :asset_decimals, CAST(:amount_at_stake AS numeric), :status)
