-- 200 short rows, then one whose CSV (5,000 bytes of text) is longer than the test's 1,000-byte
-- COPY block: Arrow meets it after the first blocks were handed over.
SELECT g::int8 AS item_id, 'y' AS note, '1' AS amount FROM generate_series(1, 200) AS g
UNION ALL
SELECT 201, repeat('x', 5000), '1'
