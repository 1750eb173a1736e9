SELECT EXISTS (SELECT 1 FROM recon.runs WHERE run_id = :run_id)
