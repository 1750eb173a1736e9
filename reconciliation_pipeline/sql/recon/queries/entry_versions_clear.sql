-- A full sweep compares every entry: it replaces what is recorded for the kind,
-- which also drops entities the database no longer has.
DELETE FROM recon.entry_versions
WHERE domain = :domain
  AND entry_kind = :entry_kind
