-- Compare-and-swap: only matches while the address still holds the observed score.
UPDATE reputation
SET score = CAST(:target_value AS bigint), updated_at = now()
WHERE address = :entity_key
  AND score = CAST(:observed_value AS bigint)
