-- Streak sync outcomes for analysts and on-call: the latest attempt per player.

CREATE INDEX IF NOT EXISTS streak_syncs_run_idx ON recon.streak_syncs (run_id);

CREATE OR REPLACE VIEW recon.latest_streak_syncs AS
SELECT DISTINCT ON (player_address)
       player_address, user_id, streak_value, chain_value, status, tx_hash, error,
       attempted_at, finished_at, run_id
FROM recon.streak_syncs
ORDER BY player_address, attempted_at DESC, sync_id DESC;
COMMENT ON VIEW recon.latest_streak_syncs IS 'The most recent streak sync attempt per player: planned, skipped, pending, success, failed or error, with its transaction hash.';
