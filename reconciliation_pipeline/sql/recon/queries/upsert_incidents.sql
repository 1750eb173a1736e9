-- Record this run's findings as incidents. A finding already open counts one
-- more consecutive run (unless this same run recorded it already); a resolved
-- one re-opens from scratch: a new occurrence, with the on-call workflow's
-- acknowledgement and resolution cleared (recon.incident_events keeps them).
-- The chain change (the entry's last_modified_ledger) is kept from the
-- occurrence's first finding: that is when the drift can have started.
INSERT INTO recon.drift_incidents AS i (
    domain, entity_type, entity_id, field, drift_class, severity, state,
    first_seen_at, last_seen_at, first_run_id, last_run_id, consecutive_runs,
    last_db_value, last_chain_value, last_delta,
    asset_code, asset_issuer, asset_contract_id, asset_decimals, amount_at_stake, chain_changed_ledger)
SELECT :domain, f.entity_type, f.entity_id, f.field, f.drift_class, f.severity, 'open',
       :seen_at, :seen_at, :run_id, :run_id, 1,
       f.db_value, f.chain_value, CAST(f.delta AS numeric),
       f.asset_code, f.asset_issuer, f.asset_contract_id, f.asset_decimals, CAST(f.amount AS numeric),
       f.changed_ledger
FROM unnest(CAST(:entity_types AS text[]), CAST(:entity_ids AS text[]), CAST(:fields AS text[]),
            CAST(:drift_classes AS text[]), CAST(:severities AS text[]), CAST(:db_values AS text[]),
            CAST(:chain_values AS text[]), CAST(:deltas AS text[]), CAST(:asset_codes AS text[]),
            CAST(:asset_issuers AS text[]), CAST(:asset_contract_ids AS text[]), CAST(:asset_decimals AS smallint[]),
            CAST(:amounts AS text[]), CAST(:changed_ledgers AS bigint[]))
     AS f(entity_type, entity_id, field, drift_class, severity, db_value, chain_value, delta, asset_code,
          asset_issuer, asset_contract_id, asset_decimals, amount, changed_ledger)
ON CONFLICT (domain, entity_type, entity_id, field, drift_class) DO UPDATE
SET severity             = EXCLUDED.severity,
    last_seen_at         = EXCLUDED.last_seen_at,
    last_run_id          = EXCLUDED.last_run_id,
    last_db_value        = EXCLUDED.last_db_value,
    last_chain_value     = EXCLUDED.last_chain_value,
    last_delta           = EXCLUDED.last_delta,
    asset_code           = EXCLUDED.asset_code,
    asset_issuer         = EXCLUDED.asset_issuer,
    asset_contract_id    = EXCLUDED.asset_contract_id,
    asset_decimals       = EXCLUDED.asset_decimals,
    amount_at_stake      = EXCLUDED.amount_at_stake,
    consecutive_runs     = CASE
        WHEN i.last_run_id = EXCLUDED.last_run_id THEN i.consecutive_runs
        WHEN i.state = 'resolved' THEN 1
        ELSE i.consecutive_runs + 1 END,
    occurrences          = CASE WHEN i.state = 'resolved' THEN i.occurrences + 1 ELSE i.occurrences END,
    first_seen_at        = CASE WHEN i.state = 'resolved' THEN EXCLUDED.first_seen_at ELSE i.first_seen_at END,
    first_run_id         = CASE WHEN i.state = 'resolved' THEN EXCLUDED.first_run_id ELSE i.first_run_id END,
    confirmed_at         = CASE WHEN i.state = 'resolved' THEN NULL ELSE i.confirmed_at END,
    chain_changed_ledger = CASE WHEN i.state = 'resolved' THEN EXCLUDED.chain_changed_ledger
                                ELSE coalesce(i.chain_changed_ledger, EXCLUDED.chain_changed_ledger) END,
    chain_changed_at     = CASE WHEN i.state = 'resolved' THEN NULL ELSE i.chain_changed_at END,
    acknowledged_at      = CASE WHEN i.state = 'resolved' THEN NULL ELSE i.acknowledged_at END,
    acknowledged_until   = CASE WHEN i.state = 'resolved' THEN NULL ELSE i.acknowledged_until END,
    acknowledged_by      = CASE WHEN i.state = 'resolved' THEN NULL ELSE i.acknowledged_by END,
    ack_reason           = CASE WHEN i.state = 'resolved' THEN NULL ELSE i.ack_reason END,
    resolution           = NULL,
    resolved_by          = NULL,
    resolution_note      = NULL,
    resolved_run_id      = NULL,
    resolved_at          = NULL,
    state                = CASE WHEN i.state = 'resolved' THEN 'open' ELSE i.state END
