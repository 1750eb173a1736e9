-- No rule is in force for the domain: incidents this run saw are exempt no more.
UPDATE recon.drift_incidents
SET exempt_rule_id = NULL
WHERE domain = :domain AND last_run_id = :run_id AND exempt_rule_id IS NOT NULL
