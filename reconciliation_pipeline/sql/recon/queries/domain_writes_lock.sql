-- Held until the transaction ends: one run of a domain at a time writes the rows its runs share.
SELECT pg_advisory_xact_lock(:lock_class, hashtext(:domain))
