-- Move the incremental reconciliation's watermark once a run has persisted its
-- findings: the ledger its event scan reached and its database snapshot time.
INSERT INTO recon.sweep_watermarks (domain, scope, ledger_sequence, db_watermark, run_id, recorded_at)
VALUES (:domain, :scope, :ledger_sequence, :db_watermark, :run_id, now())
ON CONFLICT (domain, scope) DO UPDATE
SET ledger_sequence = EXCLUDED.ledger_sequence,
    db_watermark = EXCLUDED.db_watermark,
    run_id = EXCLUDED.run_id,
    recorded_at = EXCLUDED.recorded_at
