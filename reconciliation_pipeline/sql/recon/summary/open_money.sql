-- Money at stake in open drift, per domain and asset (recon.open_drift_amounts), for the runs' domains.
SELECT domain, asset_code, asset_issuer, asset_contract_id, asset_decimals, incidents, amount_at_stake
FROM recon.open_drift_amounts
WHERE domain = ANY(CAST(:domains AS text[]))
ORDER BY domain, asset_code NULLS LAST, asset_contract_id
