-- Re-indexing replaces whole days: every row of the given partitions goes.
DELETE FROM recon.lending_events
WHERE partition_key = ANY(CAST(:partition_keys AS text[]))
