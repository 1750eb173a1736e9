-- A step replaying a partition again replaces what an earlier run of it recorded (problems cascade).
DELETE FROM recon.ledger_replays
WHERE domain = :domain
  AND purpose = :purpose
  AND partition_keys && CAST(:partition_keys AS text[])
