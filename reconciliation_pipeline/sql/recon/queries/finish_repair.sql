UPDATE recon.repairs
SET state = :state, reason = :reason, applied_run_id = :run_id, finished_at = now()
WHERE repair_id = :repair_id AND state = 'planned'
