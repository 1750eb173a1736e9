-- The attempt's outcome: its final status (or still 'pending' when polling gave up).
UPDATE recon.streak_syncs
SET status = :status, error = :error, finished_at = now()
WHERE sync_id = :sync_id
