SELECT rule_id, domain, entity_pattern, field, drift_class, direction, max_abs_delta::text AS max_abs_delta, owner,
       reason, created_by, created_at, expires_at, status, exempt_incidents
FROM recon.exemption_status
WHERE CAST(:include_inactive AS boolean) OR status = 'active'
ORDER BY rule_id
