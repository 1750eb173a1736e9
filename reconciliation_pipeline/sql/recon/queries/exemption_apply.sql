-- A new rule exempts the domain's unresolved incidents it matches at once (their
-- findings are marked by the next run); each is audited. Returns their ids.
WITH exempted AS (
    UPDATE recon.drift_incidents AS i
    SET exempt_rule_id = :rule_id
    WHERE i.domain = :domain
      AND i.state <> 'resolved'
      AND i.exempt_rule_id IS NULL
      AND recon.matching_exemption(i.domain, i.entity_id, i.field, i.drift_class, i.last_delta,
                                   CAST(:at AS timestamptz)) = :rule_id
    RETURNING i.incident_id, i.occurrences
),
audited AS (
    INSERT INTO recon.incident_events (incident_id, occurrence, event, actor, reason, rule_id, at)
    SELECT incident_id, occurrences, 'exempted', :actor, :reason, :rule_id, :at FROM exempted
)
SELECT incident_id FROM exempted
