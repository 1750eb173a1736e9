-- One shard of the streams snapshot (the large-fleet sharded sweep): the same
-- canonical columns as db_streams.sql, keep the two in step.
-- :shard_count and :shard select the rows whose id falls in this shard
-- (id modulo the shard count), the same rule as partitions.shard_of, so each
-- shard's run reads only its own streams.
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
  AND id % :shard_count = :shard
ORDER BY id
