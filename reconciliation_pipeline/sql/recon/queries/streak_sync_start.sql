-- One attempt to sync one player's streak on chain. Written before anything is
-- sent (with the transaction hash once it is signed), so an attempt cut short
-- by a crash still shows what may have reached the network.
INSERT INTO recon.streak_syncs (run_id, user_id, player_address, streak_value, chain_value, tx_hash, status, error)
VALUES (:run_id, :user_id, :player_address, :streak_value, :chain_value, :tx_hash, :status, :error)
RETURNING sync_id
