-- The streams an incremental run compares: the same canonical columns as
-- db_streams.sql, keep the two in step.
-- Rows updated after :since (the watermark minus an overlap, so late commits are
-- not missed) plus the rows of :ids (streams named by chain events or by open
-- incidents). A NULL :since (no watermark yet) selects every row: a full sweep.
SELECT id::text              AS stream_id,
       sender_address        AS sender,
       recipient_address     AS recipient,
       token_address         AS token,
       total_amount::text    AS total,
       released_amount::text AS released,
       lower(status)         AS status,
       updated_at
FROM streams
WHERE CAST(:since AS timestamptz) IS NULL
   OR updated_at > :since
   OR id = ANY(CAST(CAST(:ids AS text[]) AS numeric[]))
ORDER BY id
