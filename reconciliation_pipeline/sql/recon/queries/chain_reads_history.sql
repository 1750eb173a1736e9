-- The entity's latest accepted reads in this scope: (keys, missing), newest first.
SELECT keys, missing
FROM recon.chain_reads
WHERE domain = :domain AND entity = :entity AND scope = :scope AND accepted
ORDER BY read_at DESC
LIMIT :limit
