-- End a rule before its expiry: the incidents it covered are exempt no more (they alert
-- when a run next sees them). Returns their ids.
WITH revoked AS (
    UPDATE recon.exemption_rules
    SET revoked_at = :at, revoked_by = :actor, revoke_reason = :reason
    WHERE rule_id = :rule_id
    RETURNING rule_id
)
UPDATE recon.drift_incidents AS i
SET exempt_rule_id = NULL
FROM revoked
WHERE i.exempt_rule_id = revoked.rule_id
RETURNING i.incident_id
