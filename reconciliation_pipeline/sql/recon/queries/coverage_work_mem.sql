-- Memory for coverage_update.sql and coverage_insert.sql, which follow it in the run's transaction
-- (and for this transaction only): each hash-joins the staged entities with the domain's coverage.
-- At the default 4 MB a sweep's million rows spill the hash to 16 batches on disk (the update took
-- 2.8-3.1 s at 1M); within 64 MB it is one (1.8-2.1 s).
SET LOCAL work_mem = '64MB'
