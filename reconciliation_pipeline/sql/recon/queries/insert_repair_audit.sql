INSERT INTO recon.repair_audit (repair_id, run_id, action, before_value, after_value, note)
VALUES (:repair_id, :run_id, :action, :before_value, :after_value, :note)
