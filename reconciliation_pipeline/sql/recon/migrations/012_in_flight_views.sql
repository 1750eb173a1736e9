-- Drift in flight (009) is not drift yet: a write caught between the two snapshots, which
-- the next run settles. The daily counts leave it out, as finding_counts and the drift plots
-- do; it stays in recon.discrepancies with status 'in_flight' (recon.runs.in_flight counts it).
-- CREATE OR REPLACE keeps the view's columns and their comments. A separate migration because
-- a deployment at 011 applies 009 after 011, and this must follow both.

CREATE OR REPLACE VIEW recon.daily_drift_counts AS
SELECT CASE WHEN partition_key ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN CAST(left(partition_key, 10) AS date)
            ELSE CAST(detected_at AT TIME ZONE 'UTC' AS date) END   AS day,
       domain,
       partition_key,
       drift_class,
       severity,
       recon.severity_rank(severity)                               AS severity_rank,
       count(DISTINCT run_id)                                      AS runs,
       count(*)                                                    AS finding_rows,
       count(DISTINCT (entity_type, entity_id, field))             AS distinct_findings,
       count(DISTINCT (entity_type, entity_id))                    AS entities,
       count(*) FILTER (WHERE exempt_rule_id IS NOT NULL)          AS exempt_rows
FROM recon.discrepancies
WHERE status = 'drift'
GROUP BY 1, domain, partition_key, drift_class, severity;

COMMENT ON VIEW recon.daily_drift_counts IS 'Drift per day (the partition''s day, else the day detected), domain, partition, drift class and severity: every row, distinct findings and distinct entities; findings in flight left out.';
