-- Every column type a snapshot reads through COPY, with the values CSV could confuse:
-- an empty text beside NULL, text holding the delimiter, a quote and a newline, a 39-digit amount.
SELECT *
FROM (VALUES
    (1::numeric, 'plain'::text, ''::text, NULL::text, 'a,"b"' || chr(10) || 'c', true, NULL::boolean, 5::int4,
     '999999999999999999999999999999999999999'::text, '2026-01-02 03:04:05.123456+00'::timestamptz,
     '2026-01-02 03:04:05'::timestamp, 'x'::varchar),
    (2::numeric, 'NULL'::text, ' '::text, NULL::text, '\N'::text, false, false, -7::int4,
     '-170141183460469231731687303715884105728'::text, '2026-06-30 23:59:59+02'::timestamptz,
     NULL::timestamp, NULL::varchar),
    (3::numeric, '"'::text, '""'::text, 'set'::text, 't'::text, NULL::boolean, true, NULL::int4,
     NULL::text, NULL::timestamptz, '1999-12-31 00:00:00'::timestamp, ''::varchar)
) AS kinds (item_id, plain, empty_text, null_text, awkward, flag, null_flag, small, amount, created_at, seen_at,
            code)
