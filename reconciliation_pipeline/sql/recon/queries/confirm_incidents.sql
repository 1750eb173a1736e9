-- An incident seen in this run is confirmed once it persisted across enough
-- consecutive runs or is older than the grace period.
UPDATE recon.drift_incidents
SET state = 'confirmed', confirmed_at = :seen_at
WHERE domain = :domain
  AND state = 'open'
  AND last_run_id = :run_id
  AND (consecutive_runs >= :confirm_after_runs
       OR first_seen_at <= CAST(:seen_at AS timestamptz) - make_interval(mins => :grace_minutes))
