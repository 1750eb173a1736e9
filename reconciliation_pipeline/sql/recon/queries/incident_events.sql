SELECT event_id, occurrence, event, actor, reason, run_id, rule_id, until, at
FROM recon.incident_events WHERE incident_id = :incident_id ORDER BY event_id
