-- The incremental reconciliation's watermark for one (domain, scope); no row
-- means it never ran, so the next run is a full sweep.
SELECT ledger_sequence, db_watermark, run_id, recorded_at
FROM recon.sweep_watermarks
WHERE domain = :domain
  AND scope = :scope
