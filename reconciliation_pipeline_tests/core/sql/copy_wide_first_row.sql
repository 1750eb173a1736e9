-- A first row whose CSV (5,000 bytes of text) is longer than the test's 1,000-byte COPY block.
SELECT *
FROM (VALUES (1::int8, repeat('x', 5000), '1'::text), (2::int8, 'y', '2'::text)) AS wide (item_id, note, amount)
