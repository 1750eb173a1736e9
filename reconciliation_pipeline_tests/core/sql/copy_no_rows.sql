-- The kinds' columns, no row: COPY sends nothing at all.
SELECT * FROM (VALUES (1::int8, 'x'::text, '1'::text)) AS none (item_id, note, amount) WHERE false
