-- A column type COPY's CSV is not parsed for here (jsonb): the snapshot is read by the cursor.
SELECT 1::bigint AS item_id, '{"a": 1}'::jsonb AS payload, '5'::text AS amount
