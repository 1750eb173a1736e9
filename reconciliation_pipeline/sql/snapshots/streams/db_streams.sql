-- Database side of the streams reconciliation, in canonical columns.
-- Amounts are cast to text so they reach Python as exact integers.
-- :window_end bounds the snapshot to streams that existed at the end of the
-- partition's day, so a backfill of a past day replays that day's set.
SELECT id::text              AS stream_id,
       sender_address        AS sender,
       recipient_address     AS recipient,
       token_address         AS token,
       total_amount::text    AS total,
       released_amount::text AS released,
       lower(status)         AS status,
       updated_at
FROM streams
WHERE created_at < :window_end
ORDER BY id
