-- Database side of the streams reconciliation, in canonical columns: one row per stream.
-- The core applies each scope's filters around this query (the partition window on
-- created_at, what changed on updated_at, one shard of the id) and orders by the key.
-- The id stays a number so those use the table's indexes; amounts are cast to text
-- so they reach Python as exact integers.
SELECT id                    AS stream_id,
       sender_address        AS sender,
       recipient_address     AS recipient,
       token_address         AS token,
       total_amount::text    AS total,
       released_amount::text AS released,
       lower(status)         AS status,
       created_at,
       updated_at
FROM streams
