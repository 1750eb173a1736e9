-- A re-run replaces findings: those of the same run (a retried step) and, for a
-- partitioned run, those of the same partition.
DELETE FROM recon.discrepancies
WHERE domain = :domain
  AND (run_id = :run_id
       OR (CAST(:partition_key AS text) IS NOT NULL AND partition_key = :partition_key))
