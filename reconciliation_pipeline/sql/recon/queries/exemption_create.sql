INSERT INTO recon.exemption_rules (domain, entity_pattern, field, drift_class, direction, max_abs_delta, owner,
                                   reason, created_by, created_at, expires_at)
VALUES (:domain, :entity_pattern, :field, :drift_class, :direction, CAST(:max_abs_delta AS numeric), :owner,
        :reason, :created_by, :created_at, :expires_at)
RETURNING rule_id
