-- The last_modified_ledger at which each entry of one kind was last compared.
SELECT entity_key, last_modified_ledger
FROM recon.entry_versions
WHERE domain = :domain
  AND entry_kind = :entry_kind
