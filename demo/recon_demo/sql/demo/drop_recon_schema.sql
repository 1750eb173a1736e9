-- The demo's story starts over: its own database's recon schema goes, the migrations rebuild it.
DROP SCHEMA IF EXISTS recon CASCADE
