SELECT * FROM recon.exemption_rules WHERE rule_id = :rule_id
