-- Domains the pipeline has reconciled.
SELECT DISTINCT domain FROM recon.runs
