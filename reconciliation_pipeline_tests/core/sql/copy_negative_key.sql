-- A key that is not a u64.
SELECT -1::bigint AS item_id, '5'::text AS amount
