-- The incidents this run opened (occurrence 1) or reopened (a resolved incident
-- whose drift came back), as events. A retried step finds the same rows and
-- writes nothing twice.
INSERT INTO recon.incident_events (incident_id, occurrence, event, actor, run_id, at)
SELECT incident_id, occurrences, CASE WHEN occurrences = 1 THEN 'opened' ELSE 'reopened' END, 'pipeline',
       :run_id, :seen_at
FROM recon.drift_incidents
WHERE domain = :domain
  AND first_run_id = :run_id
  AND first_seen_at = :seen_at
ON CONFLICT DO NOTHING
