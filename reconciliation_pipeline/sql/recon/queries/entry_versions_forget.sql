-- Forget entries a run could not compare (read failed, undecodable, absent): the
-- next run compares them whatever their last_modified_ledger says.
DELETE FROM recon.entry_versions
WHERE domain = :domain
  AND entry_kind = :entry_kind
  AND entity_key = ANY (CAST(:entity_keys AS text[]))
