-- Analyst-grade views: severity that sorts CRITICAL first, money at stake by
-- asset, what changed between the last two runs of each job, daily counts per
-- partition and per distinct entity, coverage and detection latency; and a
-- comment on every table, view and column of the schema.

CREATE FUNCTION recon.severity_rank(p_severity text) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_severity WHEN 'CRITICAL' THEN 0 WHEN 'WARN' THEN 1 WHEN 'INFO' THEN 2 END
$$;

-- Open drift is neither resolved nor exempt.
CREATE OR REPLACE VIEW recon.open_drift_by_domain AS
SELECT domain,
       drift_class,
       severity,
       count(*) FILTER (WHERE state = 'open')      AS open_incidents,
       count(*) FILTER (WHERE state = 'confirmed') AS confirmed_incidents,
       min(first_seen_at)                          AS oldest_first_seen_at,
       max(last_seen_at)                           AS latest_seen_at,
       recon.severity_rank(severity)               AS severity_rank,
       count(*) FILTER (WHERE acknowledged_until > now()) AS acknowledged_incidents,
       sum(amount_at_stake)                        AS amount_at_stake
FROM recon.drift_incidents
WHERE state <> 'resolved' AND exempt_rule_id IS NULL
GROUP BY domain, drift_class, severity;

CREATE OR REPLACE VIEW recon.open_incidents AS
SELECT incident_id, domain, entity_type, entity_id, field, drift_class, severity, state,
       first_seen_at, last_seen_at, consecutive_runs,
       now() - first_seen_at AS age,
       last_db_value, last_chain_value, last_delta,
       recon.severity_rank(severity) AS severity_rank,
       acknowledged_until, acknowledged_by, ack_reason,
       asset_code, asset_issuer, asset_contract_id, asset_decimals, amount_at_stake,
       chain_changed_at, occurrences
FROM recon.drift_incidents
WHERE state <> 'resolved' AND exempt_rule_id IS NULL;

CREATE OR REPLACE VIEW recon.unalerted_incidents AS
SELECT i.incident_id, i.domain, i.entity_type, i.entity_id, i.field, i.drift_class, i.severity, i.state,
       i.first_seen_at, i.last_seen_at, i.consecutive_runs, i.occurrences,
       i.acknowledged_until
FROM recon.drift_incidents AS i
LEFT JOIN recon.alerts AS a
       ON a.incident_id = i.incident_id AND a.occurrence = i.occurrences AND a.kind = 'trigger'
          AND a.status IN ('sent', 'logged', 'suppressed')
WHERE i.state <> 'resolved' AND i.exempt_rule_id IS NULL AND a.alert_id IS NULL;

CREATE VIEW recon.open_drift_amounts AS
SELECT domain,
       asset_code,
       asset_issuer,
       asset_contract_id,
       asset_decimals,
       count(*)                                                              AS incidents,
       sum(amount_at_stake)                                                  AS amount_at_stake,
       round(sum(amount_at_stake) / power(10::numeric, asset_decimals), asset_decimals) AS amount_at_stake_units,
       min(first_seen_at)                                                    AS oldest_first_seen_at
FROM recon.drift_incidents
WHERE state <> 'resolved' AND exempt_rule_id IS NULL AND amount_at_stake IS NOT NULL
GROUP BY domain, asset_code, asset_issuer, asset_contract_id, asset_decimals;

-- Findings are replaced when a partition re-runs, so what changed is read from
-- the incidents' events: what the latest run of each job opened or resolved,
-- and what it still found among incidents opened before it.
CREATE VIEW recon.run_changes AS
WITH ranked AS (
    SELECT run_id, domain, job_name, started_at,
           row_number() OVER (PARTITION BY job_name, domain ORDER BY started_at DESC, run_id DESC) AS recency
    FROM recon.runs
    WHERE status IN ('succeeded', 'partial')
),
latest AS (SELECT * FROM ranked WHERE recency = 1),
previous AS (SELECT * FROM ranked WHERE recency = 2),
transitions AS (
    SELECT l.job_name, l.domain, l.run_id, l.started_at,
           CASE WHEN e.event = 'resolved' THEN 'resolved' ELSE 'new' END AS change, e.incident_id
    FROM latest AS l
    JOIN recon.incident_events AS e ON e.run_id = l.run_id AND e.event IN ('opened', 'reopened', 'resolved')
    JOIN recon.drift_incidents AS i ON i.incident_id = e.incident_id AND i.domain = l.domain
),
still_open AS (
    SELECT DISTINCT l.job_name, l.domain, l.run_id, l.started_at, 'still_open' AS change, i.incident_id
    FROM latest AS l
    JOIN recon.discrepancies AS d ON d.run_id = l.run_id AND d.domain = l.domain
    JOIN recon.drift_incidents AS i
      ON i.domain = d.domain AND i.entity_type = d.entity_type AND i.entity_id = d.entity_id
         AND i.field = d.field AND i.drift_class = d.drift_class
    WHERE NOT EXISTS (SELECT 1 FROM recon.incident_events AS e
                      WHERE e.run_id = l.run_id AND e.incident_id = i.incident_id
                        AND e.event IN ('opened', 'reopened'))
)
SELECT c.job_name, c.domain, c.run_id, c.started_at, p.run_id AS previous_run_id, p.started_at AS previous_started_at,
       c.change, i.incident_id, i.entity_type, i.entity_id, i.field, i.drift_class, i.severity,
       recon.severity_rank(i.severity) AS severity_rank, i.state, i.exempt_rule_id IS NOT NULL AS exempt,
       i.last_db_value, i.last_chain_value, i.last_delta, i.amount_at_stake
FROM (SELECT * FROM transitions UNION ALL SELECT * FROM still_open) AS c
JOIN recon.drift_incidents AS i ON i.incident_id = c.incident_id
LEFT JOIN previous AS p ON p.job_name IS NOT DISTINCT FROM c.job_name AND p.domain = c.domain;

DROP VIEW recon.daily_drift_counts;
CREATE VIEW recon.daily_drift_counts AS
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
GROUP BY 1, domain, partition_key, drift_class, severity;

CREATE VIEW recon.coverage AS
SELECT domain,
       coalesce(entity_type, '*')                                                AS entity_type,
       count(*)                                                                  AS known_entities,
       count(*) FILTER (WHERE last_checked_at >= now() - interval '24 hours')    AS checked_24h,
       count(*) FILTER (WHERE last_checked_at IS NULL)                           AS never_checked,
       round(count(*) FILTER (WHERE last_checked_at >= now() - interval '24 hours')::numeric / count(*), 4)
                                                                                 AS coverage_ratio,
       max(last_checked_at)                                                      AS last_checked_at
FROM recon.entity_coverage
WHERE last_known_at >= now() - interval '7 days'
GROUP BY GROUPING SETS ((domain, entity_type), (domain));

CREATE VIEW recon.detection_latency AS
SELECT domain,
       coalesce(drift_class, '*')                                                                      AS drift_class,
       count(*)                                                                                        AS incidents,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_seen_at - chain_changed_at))  AS open_median_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM first_seen_at - chain_changed_at)) AS open_p95_seconds,
       max(extract(epoch FROM first_seen_at - chain_changed_at))                                       AS open_max_seconds,
       count(confirmed_at)                                                                             AS confirmed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM confirmed_at - chain_changed_at))   AS confirm_median_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM confirmed_at - chain_changed_at))  AS confirm_p95_seconds,
       max(extract(epoch FROM confirmed_at - chain_changed_at))                                        AS confirm_max_seconds
FROM recon.drift_incidents
WHERE chain_changed_at IS NOT NULL AND first_seen_at >= now() - interval '30 days'
GROUP BY GROUPING SETS ((domain), (domain, drift_class));

CREATE VIEW recon.exemption_status AS
SELECT r.rule_id, r.domain, r.entity_pattern, r.field, r.drift_class, r.direction, r.max_abs_delta,
       r.owner, r.reason, r.created_by, r.created_at, r.expires_at,
       CASE WHEN r.revoked_at IS NOT NULL THEN 'revoked'
            WHEN r.expires_at <= now() THEN 'expired'
            ELSE 'active' END AS status,
       (SELECT count(*) FROM recon.drift_incidents AS i
        WHERE i.exempt_rule_id = r.rule_id AND i.state <> 'resolved') AS exempt_incidents
FROM recon.exemption_rules AS r;

-- ---------------------------------------------------------------------------
-- Comments: every table, view and column of the schema.

COMMENT ON SCHEMA recon IS 'The typed outputs of the chain <-> database reconciliation: runs, findings, incidents, repairs, alerts, coverage, and views for analysts.';
COMMENT ON FUNCTION recon.severity_rank(text) IS 'Sort key of a severity, CRITICAL first: CRITICAL 0, WARN 1, INFO 2. ORDER BY recon.severity_rank(severity).';
COMMENT ON FUNCTION recon.matching_exemption(text, text, text, text, numeric, timestamptz) IS 'The live exemption rule (lowest id) matching a finding''s domain, entity id, field, drift class and delta at a moment; NULL when none.';

COMMENT ON TABLE recon.schema_migrations IS 'One row per applied recon migration (sql/recon/migrations), written by the migrator in the same transaction as the migration.';
COMMENT ON COLUMN recon.schema_migrations.version IS 'The migration''s number (the 00N of 00N_name.sql).';
COMMENT ON COLUMN recon.schema_migrations.name IS 'The migration''s file name.';
COMMENT ON COLUMN recon.schema_migrations.applied_at IS 'When it was applied.';

COMMENT ON COLUMN recon.runs.run_id IS 'Dagster run id.';
COMMENT ON COLUMN recon.runs.domain IS 'Reconciled domain: streams, lending, markets, balances, streaks.';
COMMENT ON COLUMN recon.runs.job_name IS 'Dagster job the run belonged to.';
COMMENT ON COLUMN recon.runs.partition_key IS 'Partition reconciled (a UTC day, <day>|<shard>, <day>|escrow); NULL for unpartitioned and key-restricted runs.';
COMMENT ON COLUMN recon.runs.started_at IS 'When the domain''s first step in the run started.';
COMMENT ON COLUMN recon.runs.finished_at IS 'When its last step ended (findings committed, then repairs and the streak sync), or when it was marked failed.';
COMMENT ON COLUMN recon.runs.status IS 'running (from the first step until the last ends), succeeded, partial (some entities could not be checked) or failed (see error).';
COMMENT ON COLUMN recon.runs.dry_run IS 'True when the run asked for a dry run: repairs planned, nothing written to application tables.';
COMMENT ON COLUMN recon.runs.ledger_sequence IS 'Latest ledger the chain side was read at.';
COMMENT ON COLUMN recon.runs.db_snapshot_at IS 'When the database side was snapshotted (the earliest of its sources).';
COMMENT ON COLUMN recon.runs.entities_checked IS 'Entities compared on both sides.';
COMMENT ON COLUMN recon.runs.entities_unchecked IS 'Entities the run knew of but could not compare (read errors, time limit).';
COMMENT ON COLUMN recon.runs.finding_counts IS 'Findings by drift class, every class present (JSON object).';
COMMENT ON COLUMN recon.runs.repairs_planned IS 'Repairs the run planned.';
COMMENT ON COLUMN recon.runs.repairs_applied IS 'Repairs it applied (compare-and-swap matched).';
COMMENT ON COLUMN recon.runs.repairs_skipped IS 'Repairs skipped: the row no longer held the observed value (a concurrent app write wins).';
COMMENT ON COLUMN recon.runs.repairs_failed IS 'Repairs whose statement failed.';

COMMENT ON COLUMN recon.discrepancies.discrepancy_id IS 'Surrogate key.';
COMMENT ON COLUMN recon.discrepancies.run_id IS 'Dagster run that found it.';
COMMENT ON COLUMN recon.discrepancies.domain IS 'Reconciled domain.';
COMMENT ON COLUMN recon.discrepancies.entity_type IS 'Kind of entity: stream, loan, liquidity_position, reputation, market, amm_pool, user, escrow, transaction, ...';
COMMENT ON COLUMN recon.discrepancies.entity_id IS 'Entity identifier, prefixed by kind (stream_2, user_17, market_4; a token contract id for escrow).';
COMMENT ON COLUMN recon.discrepancies.field IS 'Field that differs; * for findings about the whole entity (missing, unreadable).';
COMMENT ON COLUMN recon.discrepancies.drift_class IS 'What kind of drift: MISSING_ON_CHAIN, MISSING_IN_DB, VALUE_MISMATCH, STATUS_MISMATCH, INVARIANT_VIOLATION, INVALID_ADDRESS, CHAIN_READ_ERROR, ...';
COMMENT ON COLUMN recon.discrepancies.severity IS 'INFO, WARN or CRITICAL; sort with recon.severity_rank(severity).';
COMMENT ON COLUMN recon.discrepancies.db_value IS 'The database''s value as canonical text (amounts exact in base units); NULL when absent.';
COMMENT ON COLUMN recon.discrepancies.chain_value IS 'The chain''s value as canonical text; NULL when absent.';
COMMENT ON COLUMN recon.discrepancies.delta IS 'Chain minus database for compared integers, exact (amounts, but also scores and counts: sum amount_at_stake for money).';
COMMENT ON COLUMN recon.discrepancies.ledger_sequence IS 'Ledger the chain value was read at.';
COMMENT ON COLUMN recon.discrepancies.db_snapshot_at IS 'When the database value was read.';
COMMENT ON COLUMN recon.discrepancies.partition_key IS 'Partition of the run; a re-run of the partition replaces its rows.';
COMMENT ON COLUMN recon.discrepancies.details IS 'Context (JSON): entity_key, last_modified_ledger, ledger_key, raw_xdr of undecodable entries, titles, wallets.';
COMMENT ON COLUMN recon.discrepancies.detected_at IS 'When the row was written.';
COMMENT ON COLUMN recon.discrepancies.exempt_rule_id IS 'The exemption rule that covered the finding when it was recorded; such findings do not alert or count as open drift.';
COMMENT ON COLUMN recon.discrepancies.asset_code IS 'Money findings: the classic asset code (USDC) when the asset is a classic asset the pipeline knows.';
COMMENT ON COLUMN recon.discrepancies.asset_issuer IS 'Money findings: the classic asset''s issuer (G...).';
COMMENT ON COLUMN recon.discrepancies.asset_contract_id IS 'Money findings: the asset''s contract (its Stellar Asset Contract or token, C...).';
COMMENT ON COLUMN recon.discrepancies.asset_decimals IS 'Money findings: decimals of the asset (7 for every Stellar Asset Contract).';
COMMENT ON COLUMN recon.discrepancies.amount_at_stake IS 'Money findings with a delta: |delta| in the asset''s base units, exact. NULL for every non-money finding.';

COMMENT ON COLUMN recon.drift_incidents.incident_id IS 'Surrogate key; what recon incidents and alerts name.';
COMMENT ON COLUMN recon.drift_incidents.domain IS 'Reconciled domain.';
COMMENT ON COLUMN recon.drift_incidents.entity_type IS 'Kind of entity.';
COMMENT ON COLUMN recon.drift_incidents.entity_id IS 'Entity identifier, prefixed by kind.';
COMMENT ON COLUMN recon.drift_incidents.field IS 'Field that differs; * for the whole entity.';
COMMENT ON COLUMN recon.drift_incidents.drift_class IS 'Drift class.';
COMMENT ON COLUMN recon.drift_incidents.severity IS 'Severity of the latest finding.';
COMMENT ON COLUMN recon.drift_incidents.state IS 'open (seen), confirmed (persisted across runs or the grace period), resolved (a run no longer saw it, or resolved by hand).';
COMMENT ON COLUMN recon.drift_incidents.first_seen_at IS 'When the current occurrence was first seen.';
COMMENT ON COLUMN recon.drift_incidents.last_seen_at IS 'When a run last saw it.';
COMMENT ON COLUMN recon.drift_incidents.first_run_id IS 'Run that opened the current occurrence.';
COMMENT ON COLUMN recon.drift_incidents.last_run_id IS 'Run that last saw it.';
COMMENT ON COLUMN recon.drift_incidents.consecutive_runs IS 'Consecutive runs that saw the current occurrence.';
COMMENT ON COLUMN recon.drift_incidents.occurrences IS 'How many times it opened: a resolved incident whose drift returns reopens as the next occurrence.';
COMMENT ON COLUMN recon.drift_incidents.confirmed_at IS 'When the current occurrence was confirmed.';
COMMENT ON COLUMN recon.drift_incidents.resolved_at IS 'When it was resolved.';
COMMENT ON COLUMN recon.drift_incidents.last_db_value IS 'Database value of the latest finding.';
COMMENT ON COLUMN recon.drift_incidents.last_chain_value IS 'Chain value of the latest finding.';
COMMENT ON COLUMN recon.drift_incidents.last_delta IS 'Delta (chain minus database) of the latest finding, exact.';
COMMENT ON COLUMN recon.drift_incidents.acknowledged_at IS 'When on-call acknowledged it (recon incidents ack).';
COMMENT ON COLUMN recon.drift_incidents.acknowledged_until IS 'No alert until then; still tracked. Cleared when the incident reopens.';
COMMENT ON COLUMN recon.drift_incidents.acknowledged_by IS 'Who acknowledged it.';
COMMENT ON COLUMN recon.drift_incidents.ack_reason IS 'Why (e.g. the fix that is shipping).';
COMMENT ON COLUMN recon.drift_incidents.exempt_rule_id IS 'The exemption rule its latest finding matches; exempt incidents neither alert nor count as open drift.';
COMMENT ON COLUMN recon.drift_incidents.resolution IS 'How it was resolved: auto (a run checked the entity and no longer saw it) or manual (recon incidents resolve).';
COMMENT ON COLUMN recon.drift_incidents.resolved_by IS 'Who resolved it by hand.';
COMMENT ON COLUMN recon.drift_incidents.resolution_note IS 'The note of a manual resolution.';
COMMENT ON COLUMN recon.drift_incidents.resolved_run_id IS 'Run that resolved it (automatic resolutions).';
COMMENT ON COLUMN recon.drift_incidents.chain_changed_ledger IS 'last_modified_ledger of the chain entry when the occurrence was first seen: the drift is no older.';
COMMENT ON COLUMN recon.drift_incidents.chain_changed_at IS 'Close time of chain_changed_ledger (getLedgers); NULL when unknown (out of retention, no ledger).';
COMMENT ON COLUMN recon.drift_incidents.asset_code IS 'Money incidents: classic asset code of the latest finding.';
COMMENT ON COLUMN recon.drift_incidents.asset_issuer IS 'Money incidents: classic asset issuer.';
COMMENT ON COLUMN recon.drift_incidents.asset_contract_id IS 'Money incidents: the asset''s contract id.';
COMMENT ON COLUMN recon.drift_incidents.asset_decimals IS 'Money incidents: the asset''s decimals.';
COMMENT ON COLUMN recon.drift_incidents.amount_at_stake IS 'Money incidents: |delta| of the latest finding in base units, exact; NULL for non-money incidents.';

COMMENT ON TABLE recon.repairs IS 'One row per planned repair of the non-authoritative side (idempotent by its key): planned, applied, skipped or failed.';
COMMENT ON COLUMN recon.repairs.repair_id IS 'Surrogate key.';
COMMENT ON COLUMN recon.repairs.idempotency_key IS 'Hash of (domain, entity, field, observed, target): re-planning the same repair finds this row.';
COMMENT ON COLUMN recon.repairs.run_id IS 'Run that planned it.';
COMMENT ON COLUMN recon.repairs.applied_run_id IS 'Run that applied (or tried to apply) it.';
COMMENT ON COLUMN recon.repairs.domain IS 'Reconciled domain.';
COMMENT ON COLUMN recon.repairs.entity_type IS 'Kind of entity.';
COMMENT ON COLUMN recon.repairs.entity_id IS 'Entity identifier.';
COMMENT ON COLUMN recon.repairs.entity_key IS 'The entity''s key as the repair query binds it.';
COMMENT ON COLUMN recon.repairs.field IS 'Field repaired.';
COMMENT ON COLUMN recon.repairs.repair_query IS 'The .sql file (compare-and-swap UPDATE or INSERT) that applies it.';
COMMENT ON COLUMN recon.repairs.observed_value IS 'Before: what the database held when planned; the UPDATE matches only while it still does.';
COMMENT ON COLUMN recon.repairs.target_value IS 'After: the authoritative side''s value.';
COMMENT ON COLUMN recon.repairs.state IS 'planned, applied, skipped (a concurrent write won) or failed.';
COMMENT ON COLUMN recon.repairs.reason IS 'Why it was skipped or failed.';
COMMENT ON COLUMN recon.repairs.planned_at IS 'When it was planned.';
COMMENT ON COLUMN recon.repairs.finished_at IS 'When it was applied, skipped or failed.';

COMMENT ON COLUMN recon.repair_audit.audit_id IS 'Surrogate key.';
COMMENT ON COLUMN recon.repair_audit.repair_id IS 'The repair attempted.';
COMMENT ON COLUMN recon.repair_audit.run_id IS 'Run that attempted it.';
COMMENT ON COLUMN recon.repair_audit.action IS 'applied, skipped or failed.';
COMMENT ON COLUMN recon.repair_audit.before_value IS 'Value before the attempt.';
COMMENT ON COLUMN recon.repair_audit.after_value IS 'Value after it.';
COMMENT ON COLUMN recon.repair_audit.note IS 'Why, for skips and failures.';
COMMENT ON COLUMN recon.repair_audit.at IS 'When.';

COMMENT ON TABLE recon.streak_syncs IS 'One row per on-chain streak sync attempt (the only chain write): player, value, transaction hash and outcome; planned when STREAK_SYNC_ENABLED is false.';
COMMENT ON COLUMN recon.streak_syncs.sync_id IS 'Surrogate key.';
COMMENT ON COLUMN recon.streak_syncs.run_id IS 'Run that attempted it.';
COMMENT ON COLUMN recon.streak_syncs.user_id IS 'The app user.';
COMMENT ON COLUMN recon.streak_syncs.player_address IS 'The player''s wallet (G...).';
COMMENT ON COLUMN recon.streak_syncs.streak_value IS 'The streak the database holds (authoritative), sent to the contract.';
COMMENT ON COLUMN recon.streak_syncs.chain_value IS 'What the contract held when re-read.';
COMMENT ON COLUMN recon.streak_syncs.tx_hash IS 'Hash of the sync_streak transaction.';
COMMENT ON COLUMN recon.streak_syncs.status IS 'planned, skipped_match, pending, success, failed or error.';
COMMENT ON COLUMN recon.streak_syncs.error IS 'Why it failed.';
COMMENT ON COLUMN recon.streak_syncs.attempted_at IS 'When it was attempted.';
COMMENT ON COLUMN recon.streak_syncs.finished_at IS 'When its outcome was known.';

COMMENT ON COLUMN recon.lending_events.event_id IS 'The RPC''s event id (TOID-event index).';
COMMENT ON COLUMN recon.lending_events.partition_key IS 'UTC day of the ledger''s close (YYYY-MM-DD).';
COMMENT ON COLUMN recon.lending_events.contract_id IS 'The lending contract.';
COMMENT ON COLUMN recon.lending_events.ledger IS 'Ledger of the event.';
COMMENT ON COLUMN recon.lending_events.ledger_closed_at IS 'Close time of that ledger.';
COMMENT ON COLUMN recon.lending_events.tx_hash IS 'Hash of the transaction that emitted it.';
COMMENT ON COLUMN recon.lending_events.event_type IS 'loan_created, loan_repaid, loan_closed, deposit or withdraw.';
COMMENT ON COLUMN recon.lending_events.loan_id IS 'Loan events: the loan id.';
COMMENT ON COLUMN recon.lending_events.address IS 'Borrower (loan_created) or provider (deposit, withdraw).';
COMMENT ON COLUMN recon.lending_events.amount IS 'Principal, repaid, deposited or withdrawn amount in base units, exact.';
COMMENT ON COLUMN recon.lending_events.loan_status IS 'loan_closed: the final status, lower case.';
COMMENT ON COLUMN recon.lending_events.topic_xdr IS 'The raw topic segments (base64 ScVal).';
COMMENT ON COLUMN recon.lending_events.value_xdr IS 'The raw value (base64 ScVal).';
COMMENT ON COLUMN recon.lending_events.decode_error IS 'Set when the event does not follow CONTRACTS.md section 2.';
COMMENT ON COLUMN recon.lending_events.indexed_run_id IS 'Run that indexed it.';
COMMENT ON COLUMN recon.lending_events.indexed_at IS 'When it was indexed.';

COMMENT ON TABLE recon.alerts IS 'One row per incident occurrence and kind (trigger when it alerts, resolve when it resolves): route, channels due, channels that took it (sinks), status and the incident as alerted.';
COMMENT ON COLUMN recon.alerts.alert_id IS 'Surrogate key.';
COMMENT ON COLUMN recon.alerts.incident_id IS 'The incident.';
COMMENT ON COLUMN recon.alerts.occurrence IS 'Its occurrence (a reopened incident alerts again).';
COMMENT ON COLUMN recon.alerts.severity IS 'Severity when alerted.';
COMMENT ON COLUMN recon.alerts.route IS 'Name of the route (alert routes file) that carried it; immediate/confirmed under the default routes.';
COMMENT ON COLUMN recon.alerts.status IS 'sent (every channel of the route took it), failed (some did not; retried on later ticks), suppressed (alerted on the same route within its suppression interval); logged on rows from before routing.';
COMMENT ON COLUMN recon.alerts.sinks IS 'Channels that took it.';
COMMENT ON COLUMN recon.alerts.attempts IS 'Delivery attempts (sensor ticks).';
COMMENT ON COLUMN recon.alerts.error IS 'Last delivery error; never a webhook URL, routing key or password.';
COMMENT ON COLUMN recon.alerts.payload IS 'The incident as alerted (structured-log form).';
COMMENT ON COLUMN recon.alerts.first_attempt_at IS 'First attempt.';
COMMENT ON COLUMN recon.alerts.last_attempt_at IS 'Latest attempt.';
COMMENT ON COLUMN recon.alerts.sent_at IS 'When every channel had taken it.';
COMMENT ON COLUMN recon.alerts.kind IS 'trigger (the incident opened or was confirmed) or resolve (its resolved notice).';
COMMENT ON COLUMN recon.alerts.channels IS 'Channels the route sends it to.';
COMMENT ON COLUMN recon.alerts.run_id IS 'Run whose grouped message carried it (the run that opened, confirmed or resolved the incident).';

COMMENT ON COLUMN recon.sweep_watermarks.domain IS 'Reconciled domain.';
COMMENT ON COLUMN recon.sweep_watermarks.scope IS 'What the watermark covers, e.g. stream, usdc_movements.';
COMMENT ON COLUMN recon.sweep_watermarks.ledger_sequence IS 'Chain events up to this ledger have been scanned.';
COMMENT ON COLUMN recon.sweep_watermarks.db_watermark IS 'Database rows updated before this were compared.';
COMMENT ON COLUMN recon.sweep_watermarks.run_id IS 'Run that moved it.';
COMMENT ON COLUMN recon.sweep_watermarks.recorded_at IS 'When it moved.';

COMMENT ON COLUMN recon.entry_versions.domain IS 'Reconciled domain.';
COMMENT ON COLUMN recon.entry_versions.entry_kind IS 'Which entry of the entity: amm_pool, market_instance.';
COMMENT ON COLUMN recon.entry_versions.entity_key IS 'The spec''s key column as text (the market id).';
COMMENT ON COLUMN recon.entry_versions.last_modified_ledger IS 'The entry''s last_modified_ledger when last compared.';
COMMENT ON COLUMN recon.entry_versions.run_id IS 'Run that compared it.';
COMMENT ON COLUMN recon.entry_versions.recorded_at IS 'When.';

COMMENT ON TABLE recon.exemption_rules IS 'Exemptions: a known case by domain, entity pattern, field, drift class and optional delta direction/bound, with owner, reason and expiry. Matching findings are recorded and marked exempt, never alerted, never open drift.';
COMMENT ON COLUMN recon.exemption_rules.rule_id IS 'Surrogate key (recon incidents rules lists them).';
COMMENT ON COLUMN recon.exemption_rules.domain IS 'Domain the rule applies to.';
COMMENT ON COLUMN recon.exemption_rules.entity_pattern IS 'Glob over entity ids: * any run of characters, ? one character (stream_*, user_1?).';
COMMENT ON COLUMN recon.exemption_rules.entity_like IS 'entity_pattern as a LIKE pattern (generated).';
COMMENT ON COLUMN recon.exemption_rules.field IS 'Field it covers; NULL for every field.';
COMMENT ON COLUMN recon.exemption_rules.drift_class IS 'Drift class it covers; NULL for every class.';
COMMENT ON COLUMN recon.exemption_rules.direction IS 'chain_above_db (delta > 0) or chain_below_db (delta < 0); NULL for either. A direction never matches findings without a delta.';
COMMENT ON COLUMN recon.exemption_rules.max_abs_delta IS 'Largest |delta| (base units) it covers; NULL for any.';
COMMENT ON COLUMN recon.exemption_rules.owner IS 'Team or person answerable for the known case.';
COMMENT ON COLUMN recon.exemption_rules.reason IS 'Why the case is exempt.';
COMMENT ON COLUMN recon.exemption_rules.created_by IS 'Who created the rule.';
COMMENT ON COLUMN recon.exemption_rules.created_at IS 'When.';
COMMENT ON COLUMN recon.exemption_rules.expires_at IS 'The rule covers nothing from then on: matching drift alerts again.';
COMMENT ON COLUMN recon.exemption_rules.revoked_at IS 'When it was revoked before its expiry.';
COMMENT ON COLUMN recon.exemption_rules.revoked_by IS 'Who revoked it.';
COMMENT ON COLUMN recon.exemption_rules.revoke_reason IS 'Why.';

COMMENT ON TABLE recon.incident_events IS 'Append-only history of every incident: what the pipeline did (opened, reopened, confirmed, resolved, actor pipeline) and what on-call did (acknowledged, exempted, resolved by hand): who, when, why.';
COMMENT ON COLUMN recon.incident_events.event_id IS 'Surrogate key, in order of writing.';
COMMENT ON COLUMN recon.incident_events.incident_id IS 'The incident.';
COMMENT ON COLUMN recon.incident_events.occurrence IS 'Its occurrence at the time.';
COMMENT ON COLUMN recon.incident_events.event IS 'opened, reopened, confirmed, resolved, acknowledged or exempted.';
COMMENT ON COLUMN recon.incident_events.actor IS 'pipeline, or the person who acted.';
COMMENT ON COLUMN recon.incident_events.reason IS 'Why (an acknowledgement''s reason, a resolution''s note).';
COMMENT ON COLUMN recon.incident_events.run_id IS 'Run that caused it (pipeline events).';
COMMENT ON COLUMN recon.incident_events.rule_id IS 'Exemption rule (exempted events).';
COMMENT ON COLUMN recon.incident_events.until IS 'Acknowledgements: until when no alert is sent.';
COMMENT ON COLUMN recon.incident_events.at IS 'When.';

COMMENT ON TABLE recon.alert_messages IS 'One row per grouped alert message sent to one channel (a route''s new or resolved incidents of one run, or a failed run). Holds no secret.';
COMMENT ON COLUMN recon.alert_messages.message_id IS 'Surrogate key.';
COMMENT ON COLUMN recon.alert_messages.route IS 'Route that sent it.';
COMMENT ON COLUMN recon.alert_messages.channel IS 'Channel name in the alert routes file.';
COMMENT ON COLUMN recon.alert_messages.channel_type IS 'log, slack, pagerduty or email.';
COMMENT ON COLUMN recon.alert_messages.kind IS 'trigger, resolve or run_failure.';
COMMENT ON COLUMN recon.alert_messages.run_id IS 'Run the message is about.';
COMMENT ON COLUMN recon.alert_messages.incident_ids IS 'Incidents it lists.';
COMMENT ON COLUMN recon.alert_messages.status IS 'sent or failed.';
COMMENT ON COLUMN recon.alert_messages.error IS 'Why it failed (no secret).';
COMMENT ON COLUMN recon.alert_messages.payload IS 'What was sent (for PagerDuty, without the routing key).';
COMMENT ON COLUMN recon.alert_messages.sent_at IS 'When.';

COMMENT ON TABLE recon.entity_coverage IS 'One row per entity a run knew of: when it was last known and last compared. What the coverage view counts.';
COMMENT ON COLUMN recon.entity_coverage.domain IS 'Reconciled domain.';
COMMENT ON COLUMN recon.entity_coverage.entity_type IS 'Kind of entity.';
COMMENT ON COLUMN recon.entity_coverage.entity_id IS 'Entity identifier.';
COMMENT ON COLUMN recon.entity_coverage.first_known_at IS 'When a run first knew of it.';
COMMENT ON COLUMN recon.entity_coverage.last_known_at IS 'When a run last knew of it (compared or not).';
COMMENT ON COLUMN recon.entity_coverage.last_checked_at IS 'When a run last compared it on both sides; NULL: never.';
COMMENT ON COLUMN recon.entity_coverage.last_run_id IS 'Run that last knew of it.';

-- Views.
COMMENT ON VIEW recon.open_drift_by_domain IS 'Open drift (unresolved, not exempt) by domain, drift class and severity.';
COMMENT ON VIEW recon.open_incidents IS 'Open incidents (unresolved, not exempt) with their age, latest values, acknowledgement and money at stake.';
COMMENT ON VIEW recon.unalerted_incidents IS 'Open incidents whose current occurrence has not alerted (yet: routes may wait for confirmation, an acknowledgement holds it).';
COMMENT ON VIEW recon.open_drift_amounts IS 'Money at stake in open drift by domain and asset: sums only money incidents (amount_at_stake), exact in base units and in whole units.';
COMMENT ON VIEW recon.run_changes IS 'What the latest run of each job and domain changed: incidents it opened (new), resolved (resolved) and still found (still_open), beside the previous run.';
COMMENT ON VIEW recon.daily_drift_counts IS 'Findings per day (the partition''s day, else the day detected), domain, partition, drift class and severity: every row, distinct findings and distinct entities.';
COMMENT ON VIEW recon.coverage IS 'Per domain and entity type (* for all types): entities known in the last 7 days, compared in the last 24 hours, never compared, and the share compared.';
COMMENT ON VIEW recon.detection_latency IS 'Per domain and drift class (* for all) over the last 30 days: seconds from the chain change (close time of the entry''s last_modified_ledger) to the incident being opened and confirmed.';
COMMENT ON VIEW recon.exemption_status IS 'Every exemption rule with its status (active, expired, revoked) and the open incidents it covers now.';

COMMENT ON COLUMN recon.open_drift_by_domain.open_incidents IS 'Incidents open (not yet confirmed).';
COMMENT ON COLUMN recon.open_drift_by_domain.confirmed_incidents IS 'Incidents confirmed.';
COMMENT ON COLUMN recon.open_drift_by_domain.oldest_first_seen_at IS 'Oldest first sighting among them.';
COMMENT ON COLUMN recon.open_drift_by_domain.latest_seen_at IS 'Latest sighting among them.';
COMMENT ON COLUMN recon.open_drift_by_domain.acknowledged_incidents IS 'Of them, acknowledged until a time still to come.';
COMMENT ON COLUMN recon.open_drift_by_domain.amount_at_stake IS 'Summed amount_at_stake of their money incidents (base units; mixes assets: see open_drift_amounts).';
COMMENT ON COLUMN recon.open_incidents.age IS 'How long since the current occurrence was first seen.';
COMMENT ON COLUMN recon.open_drift_amounts.incidents IS 'Open money incidents in the asset.';
COMMENT ON COLUMN recon.open_drift_amounts.amount_at_stake IS 'Their summed |delta| in base units, exact.';
COMMENT ON COLUMN recon.open_drift_amounts.amount_at_stake_units IS 'The same in whole units of the asset (base units / 10^decimals), exact.';
COMMENT ON COLUMN recon.open_drift_amounts.oldest_first_seen_at IS 'Oldest first sighting among them.';
COMMENT ON COLUMN recon.run_changes.job_name IS 'Dagster job.';
COMMENT ON COLUMN recon.run_changes.run_id IS 'The job''s latest finished run for the domain.';
COMMENT ON COLUMN recon.run_changes.started_at IS 'When it started.';
COMMENT ON COLUMN recon.run_changes.previous_run_id IS 'The run of the same job and domain before it.';
COMMENT ON COLUMN recon.run_changes.previous_started_at IS 'When that one started.';
COMMENT ON COLUMN recon.run_changes.change IS 'new (opened or reopened by the latest run), resolved (resolved by it), still_open (open before it and still found).';
COMMENT ON COLUMN recon.run_changes.state IS 'The incident''s state now.';
COMMENT ON COLUMN recon.run_changes.exempt IS 'Whether an exemption covers it now.';
COMMENT ON COLUMN recon.daily_drift_counts.day IS 'The partition''s UTC day for partitioned runs, else the UTC day the finding was written.';
COMMENT ON COLUMN recon.daily_drift_counts.partition_key IS 'Partition; NULL for the every-5-minutes and key-restricted runs.';
COMMENT ON COLUMN recon.daily_drift_counts.runs IS 'Runs that recorded findings.';
COMMENT ON COLUMN recon.daily_drift_counts.finding_rows IS 'Every finding row, one per run that saw it (a drift seen by 288 five-minute runs counts 288).';
COMMENT ON COLUMN recon.daily_drift_counts.distinct_findings IS 'Distinct (entity, field) findings.';
COMMENT ON COLUMN recon.daily_drift_counts.entities IS 'Distinct entities.';
COMMENT ON COLUMN recon.daily_drift_counts.exempt_rows IS 'Rows an exemption covered.';
COMMENT ON COLUMN recon.coverage.entity_type IS 'Kind of entity; * for the domain as a whole.';
COMMENT ON COLUMN recon.coverage.known_entities IS 'Entities a run knew of in the last 7 days.';
COMMENT ON COLUMN recon.coverage.checked_24h IS 'Of them, compared on both sides in the last 24 hours.';
COMMENT ON COLUMN recon.coverage.never_checked IS 'Of them, never compared.';
COMMENT ON COLUMN recon.coverage.coverage_ratio IS 'checked_24h / known_entities.';
COMMENT ON COLUMN recon.coverage.last_checked_at IS 'Latest comparison.';
COMMENT ON COLUMN recon.detection_latency.drift_class IS 'Drift class; * for the domain as a whole.';
COMMENT ON COLUMN recon.detection_latency.incidents IS 'Incidents first seen in the last 30 days whose chain change time is known.';
COMMENT ON COLUMN recon.detection_latency.open_median_seconds IS 'Median seconds from the chain change to the incident being opened.';
COMMENT ON COLUMN recon.detection_latency.open_p95_seconds IS '95th percentile of the same.';
COMMENT ON COLUMN recon.detection_latency.open_max_seconds IS 'Longest of the same.';
COMMENT ON COLUMN recon.detection_latency.confirmed IS 'Of them, confirmed.';
COMMENT ON COLUMN recon.detection_latency.confirm_median_seconds IS 'Median seconds from the chain change to the incident being confirmed.';
COMMENT ON COLUMN recon.detection_latency.confirm_p95_seconds IS '95th percentile of the same.';
COMMENT ON COLUMN recon.detection_latency.confirm_max_seconds IS 'Longest of the same.';
COMMENT ON COLUMN recon.exemption_status.status IS 'active, expired or revoked.';
COMMENT ON COLUMN recon.exemption_status.exempt_incidents IS 'Unresolved incidents the rule covers now.';
COMMENT ON COLUMN recon.lending_daily_events.day IS 'UTC day (partition key).';
COMMENT ON COLUMN recon.lending_daily_events.events IS 'Events indexed.';
COMMENT ON COLUMN recon.lending_daily_events.undecodable IS 'Of them, not following the layout.';
COMMENT ON COLUMN recon.lending_daily_events.amount IS 'Their summed amount in base units, exact.';

-- Every other view column is a column of the table it reads, unchanged: it
-- carries that column's comment, copied here so the two never disagree.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT v.relname AS view_name, a.attname AS column_name, s.source
        FROM (VALUES ('open_drift_by_domain', 'drift_incidents'), ('open_incidents', 'drift_incidents'),
                     ('unalerted_incidents', 'drift_incidents'), ('open_drift_amounts', 'drift_incidents'),
                     ('run_changes', 'drift_incidents'), ('daily_drift_counts', 'discrepancies'),
                     ('coverage', 'entity_coverage'), ('detection_latency', 'drift_incidents'),
                     ('exemption_status', 'exemption_rules'), ('latest_streak_syncs', 'streak_syncs'),
                     ('lending_daily_events', 'lending_events')) AS s(view_name, source)
        JOIN pg_class AS v ON v.relname = s.view_name AND v.relnamespace = 'recon'::regnamespace
        JOIN pg_attribute AS a ON a.attrelid = v.oid AND a.attnum > 0
        WHERE col_description(v.oid, a.attnum) IS NULL
    LOOP
        EXECUTE format('COMMENT ON COLUMN recon.%I.%I IS %L', c.view_name, c.column_name,
                       coalesce(col_description(format('recon.%I', c.source)::regclass,
                                                (SELECT attnum FROM pg_attribute
                                                 WHERE attrelid = format('recon.%I', c.source)::regclass
                                                   AND attname = c.column_name)),
                                CASE c.column_name
                                    WHEN 'severity_rank' THEN 'recon.severity_rank(severity): 0 CRITICAL, 1 WARN, 2 INFO.'
                                    WHEN 'incident_id' THEN 'The incident.'
                                END));
    END LOOP;
END
$$;
