UPDATE recon.runs
SET dry_run = :dry_run,
    repairs_planned = :planned,
    repairs_applied = :applied,
    repairs_skipped = :skipped,
    repairs_failed = :failed,
    repairs_refused = :refused
WHERE run_id = :run_id AND domain = :domain
