-- Detection latency, in seconds, of the incidents one run opened (or reopened)
-- and of those it confirmed, where the chain change's time is known.
WITH events AS (
    SELECT e.event, i.first_seen_at, i.confirmed_at, i.chain_changed_at
    FROM recon.incident_events AS e
    JOIN recon.drift_incidents AS i ON i.incident_id = e.incident_id AND i.occurrences = e.occurrence
    WHERE e.run_id = :run_id
      AND i.domain = :domain
      AND e.event IN ('opened', 'reopened', 'confirmed')
      AND i.chain_changed_at IS NOT NULL
),
opened AS (
    SELECT extract(epoch FROM first_seen_at - chain_changed_at) AS s FROM events WHERE event <> 'confirmed'
),
confirmed AS (
    SELECT extract(epoch FROM confirmed_at - chain_changed_at) AS s FROM events WHERE event = 'confirmed'
)
SELECT (SELECT count(*) FROM opened)                                          AS opened,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM opened)    AS open_median_s,
       (SELECT max(s) FROM opened)                                            AS open_max_s,
       (SELECT count(*) FROM confirmed)                                       AS confirmed,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM confirmed) AS confirm_median_s,
       (SELECT max(s) FROM confirmed)                                         AS confirm_max_s
