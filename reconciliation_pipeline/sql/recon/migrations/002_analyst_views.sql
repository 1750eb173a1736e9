-- Views for analysts. Query these rather than the raw tables where you can.

CREATE OR REPLACE VIEW recon.open_drift_by_domain AS
SELECT domain,
       drift_class,
       severity,
       count(*) FILTER (WHERE state = 'open')      AS open_incidents,
       count(*) FILTER (WHERE state = 'confirmed') AS confirmed_incidents,
       min(first_seen_at)                          AS oldest_first_seen_at,
       max(last_seen_at)                           AS latest_seen_at
FROM recon.drift_incidents
WHERE state <> 'resolved'
GROUP BY domain, drift_class, severity;
COMMENT ON VIEW recon.open_drift_by_domain IS 'Unresolved drift incidents by domain, class and severity.';

CREATE OR REPLACE VIEW recon.daily_drift_counts AS
SELECT date_trunc('day', detected_at AT TIME ZONE 'UTC')::date AS day,
       domain,
       drift_class,
       severity,
       count(*)                  AS findings,
       count(DISTINCT entity_id) AS entities
FROM recon.discrepancies
GROUP BY 1, domain, drift_class, severity;
COMMENT ON VIEW recon.daily_drift_counts IS 'Findings per UTC day of detection, domain, class and severity.';

CREATE OR REPLACE VIEW recon.open_incidents AS
SELECT incident_id, domain, entity_type, entity_id, field, drift_class, severity, state,
       first_seen_at, last_seen_at, consecutive_runs,
       now() - first_seen_at AS age,
       last_db_value, last_chain_value, last_delta
FROM recon.drift_incidents
WHERE state <> 'resolved';
COMMENT ON VIEW recon.open_incidents IS 'Unresolved incidents with their age, newest values first-class.';
