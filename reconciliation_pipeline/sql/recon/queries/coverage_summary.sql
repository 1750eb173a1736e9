-- A domain's coverage at a moment, per entity type: the entities known in the
-- last :known_days days, those compared in the last :window_hours hours, and
-- those never compared at all.
SELECT entity_type,
       count(*)                                                                    AS known,
       count(*) FILTER (WHERE last_checked_at >= CAST(:at AS timestamptz) - make_interval(hours => :window_hours))
                                                                                   AS checked_recently,
       count(*) FILTER (WHERE last_checked_at IS NULL)                             AS never_checked
FROM recon.entity_coverage
WHERE domain = :domain
  AND last_known_at >= CAST(:at AS timestamptz) - make_interval(days => :known_days)
GROUP BY entity_type
ORDER BY entity_type
