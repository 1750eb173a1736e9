-- The app writes to every `every`-th stream: a new updated_at and, where the
-- invariants allow, one more base unit released (so some rows now drift).
UPDATE streams
SET released_amount = CASE WHEN released_amount < total_amount THEN released_amount + 1 ELSE released_amount END,
    updated_at = now()
WHERE id % CAST(:every AS numeric) = 1
