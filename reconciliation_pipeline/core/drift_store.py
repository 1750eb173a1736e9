"""Persisting a domain's findings: run record, discrepancies and incidents.

Everything for one (run, domain) is written in one transaction, so analysts
never see a run's findings without its incidents or the other way round:
the findings (with their asset and amount at stake when they are money), the
incidents they open, confirm or resolve (each transition also written to
`recon.incident_events`), the exemptions live rules grant, and the coverage of
the entities the run knew of.

Findings in flight (`core.inflight`) are recorded with that status but open no
incident: they are remembered in `recon.in_flight`, and only when the next run
sees the same finding in flight again has it persisted, and is drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.coverage import record_coverage
from reconciliation_pipeline.core.drift import FindingStatus
from reconciliation_pipeline.core.finding_rows import StorableFindings, insert_params, missing, storable_findings
from reconciliation_pipeline.core.findings import counts_by_class, drifting
from reconciliation_pipeline.core.json_text import storable_text, to_json
from reconciliation_pipeline.core.results import Checked, DomainDiff

INCIDENT_KEY = ["entity_type", "entity_id", "field", "drift_class"]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    job_name: str
    partition_key: str | None


@dataclass(frozen=True)
class IncidentPolicy:
    confirm_after_runs: int = 2
    grace_minutes: int = 60

    def __post_init__(self) -> None:
        if self.confirm_after_runs < 1 or self.grace_minutes < 0:
            raise ValueError("confirm_after_runs must be >= 1 and grace_minutes >= 0")


@dataclass(frozen=True)
class PersistSummary:
    findings: int
    counts: dict[str, int]
    status: str
    opened_or_seen: int
    confirmed: int
    resolved: int
    opened: int = 0
    """Incidents this run opened or reopened (of `opened_or_seen`)."""
    exempt: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=INCIDENT_KEY))
    """The incident keys of this run's findings that a live exemption rule matched."""
    in_flight: int = 0
    """Findings recorded in flight: they open no incident until a next run sees them again."""
    storage_errors: int = 0
    """Findings stored without their values because PostgreSQL could not store those (`core.finding_rows`)."""


def _none_if_missing(value: Any) -> Any:
    return None if missing(value) else value


def _insert_findings(connection: Connection, stored: StorableFindings, run_params: dict[str, Any]) -> StorableFindings:
    """Insert the findings; one PostgreSQL rejects becomes a storage error, the others are inserted as they are.

    The whole batch goes in one savepoint; only if PostgreSQL refuses it are the halves retried,
    down to the single findings it refuses, so a clean run costs one statement."""
    rejected: dict[int, str] = {}
    _insert_range(connection, insert_params(stored, run_params), 0, len(stored.params), rejected)
    if not rejected:
        return stored
    stored = stored.replace(rejected)
    connection.execute(sql.query("recon/queries/insert_finding.sql"),
                       [{**run_params, **stored.params[position].values} for position in sorted(rejected)])
    return stored


def _insert_range(connection: Connection, params: list[dict[str, Any]], start: int, stop: int,
                  rejected: dict[int, str]) -> None:
    if start >= stop:
        return
    try:
        with connection.begin_nested():
            connection.execute(sql.query("recon/queries/insert_finding.sql"), params[start:stop])
    except (sa.exc.DataError, sa.exc.IntegrityError) as error:
        if stop - start == 1:
            rejected[start] = f"PostgreSQL refused the finding: {str(error.orig).strip()}"
            return
        middle = (start + stop) // 2
        _insert_range(connection, params, start, middle, rejected)
        _insert_range(connection, params, middle, stop, rejected)


def _changed_ledgers(details: pd.Series) -> list[int | None]:
    """The `last_modified_ledger` a finding's entry carries, when known: when the chain side last changed."""
    ledgers = details.map(lambda d: d.get("last_modified_ledger") if isinstance(d, dict) else None)
    return [None if _none_if_missing(v) is None else int(v) for v in ledgers]


def _text_array(values: pd.Series) -> list[str | None]:
    return [None if missing(v) else storable_text(str(v)) for v in values]


def _record_incidents(
    connection: Connection,
    run: RunInfo,
    domain: str,
    findings: pd.DataFrame,
    checked: Checked,
    in_flight: pd.DataFrame,
    policy: IncidentPolicy,
    seen_at: datetime,
) -> tuple[int, int, int, int]:
    """Open or update, confirm and resolve incidents; every transition is an `incident_events` row."""
    base = {"domain": domain, "run_id": run.run_id, "seen_at": seen_at}
    # One incident per (entity, field, class): the first finding of each wins.
    unique = findings.drop_duplicates(INCIDENT_KEY)
    seen = opened = 0
    if len(unique):
        seen = connection.execute(
            sql.query("recon/queries/upsert_incidents.sql"),
            {
                **base,
                "entity_types": _text_array(unique["entity_type"]),
                "entity_ids": _text_array(unique["entity_id"]),
                "fields": _text_array(unique["field"]),
                "drift_classes": _text_array(unique["drift_class"]),
                "severities": _text_array(unique["severity"]),
                "db_values": _text_array(unique["db_value"]),
                "chain_values": _text_array(unique["chain_value"]),
                "deltas": _text_array(unique["delta"]),
                "asset_codes": _text_array(unique["asset_code"]),
                "asset_issuers": _text_array(unique["asset_issuer"]),
                "asset_contract_ids": _text_array(unique["asset_contract_id"]),
                "asset_decimals": [None if _none_if_missing(v) is None else int(v) for v in unique["asset_decimals"]],
                "amounts": _text_array(unique["amount_at_stake"]),
                "changed_ledgers": _changed_ledgers(unique["details"]),
            },
        ).rowcount
        opened = connection.execute(sql.query("recon/queries/incident_opened_events.sql"), base).rowcount
    confirmed = connection.execute(
        sql.query("recon/queries/confirm_incidents.sql"),
        {**base, "confirm_after_runs": policy.confirm_after_runs, "grace_minutes": policy.grace_minutes},
    ).rowcount
    resolved = 0
    resolvable = _with_open_incidents(connection, domain, checked, in_flight)
    if len(resolvable):
        resolved = connection.execute(
            sql.query("recon/queries/resolve_incidents.sql"),
            {
                **base,
                "entity_types": _text_array(resolvable["entity_type"]),
                "entity_ids": _text_array(resolvable["entity_id"]),
            },
        ).rowcount
    return seen, opened, confirmed, resolved


def _apply_exemptions(connection: Connection, run: RunInfo, domain: str, seen_at: datetime) -> pd.DataFrame:
    """Mark this run's findings and incidents that a live exemption rule matches (and clear incidents
    whose rule expired or was revoked); returns the exempt findings' incident keys."""
    params = {"domain": domain, "run_id": run.run_id, "seen_at": seen_at}
    if not connection.execute(sql.query("recon/queries/live_exemption_rules.sql"), params).scalar_one():
        # No rule to match: only incidents exempted before (their rule has since lapsed) change.
        connection.execute(sql.query("recon/queries/clear_incident_exemptions.sql"), params)
        return pd.DataFrame(columns=INCIDENT_KEY)
    connection.execute(sql.query("recon/queries/exempt_incidents.sql"), params)
    rows = connection.execute(sql.query("recon/queries/exempt_findings.sql"), params).tuples().all()
    return pd.DataFrame(rows, columns=INCIDENT_KEY, dtype=object).drop_duplicates()


def _with_open_incidents(connection: Connection, domain: str, checked: Checked,
                         in_flight: pd.DataFrame) -> pd.DataFrame:
    """The checked entities that have unresolved incidents, less those with a finding in flight
    (the next run settles them). A sweep checks a million entities and few have incidents:
    sending only those keeps the resolve statement small."""
    if not checked.count:
        return checked.entities
    open_entities = connection.execute(sql.query("recon/queries/open_incident_entities.sql"),
                                       {"domain": domain}).tuples().all()
    moving = set(zip(in_flight["entity_type"].astype(str), in_flight["entity_id"].astype(str), strict=True))
    return checked.compared_among(pair for pair in ((str(t), str(i)) for t, i in open_entities)
                                  if pair not in moving)


def promote_persisting(engine: Engine, domain: str, run_id: str, findings: pd.DataFrame) -> pd.DataFrame:
    """In-flight findings that an earlier run saw in flight too have persisted: they are drift."""
    in_flight = findings["status"] == FindingStatus.IN_FLIGHT.value
    if not in_flight.any():
        return findings
    with engine.connect() as connection:
        earlier = connection.execute(sql.query("recon/queries/in_flight_read.sql"),
                                     {"domain": domain, "run_id": run_id}).tuples().all()
    if not earlier:
        return findings
    keys = pd.MultiIndex.from_frame(findings[INCIDENT_KEY].astype(str))
    persisted = in_flight & keys.isin(pd.MultiIndex.from_tuples(earlier, names=INCIDENT_KEY))
    details = [{**d, "in_flight_persisted": d.get("in_flight")} if p else d
               for d, p in zip(findings["details"], persisted, strict=True)]
    return findings.assign(status=findings["status"].mask(persisted, FindingStatus.DRIFT.value),
                           details=pd.Series(details, index=findings.index, dtype=object))


def _remember_in_flight(connection: Connection, run: RunInfo, domain: str, in_flight: pd.DataFrame,
                        checked: Checked, seen_at: datetime) -> None:
    """What this run saw in flight replaces what was remembered for the entities it checked."""
    remembered = connection.execute(sql.query("recon/queries/in_flight_read.sql"),
                                    {"domain": domain, "run_id": ""}).tuples().all()
    if remembered and checked.count:
        settled = checked.compared_among((str(t), str(i)) for t, i, _, _ in remembered)
        if len(settled):
            connection.execute(sql.query("recon/queries/in_flight_forget.sql"), {
                "domain": domain, "entity_types": _text_array(settled["entity_type"]),
                "entity_ids": _text_array(settled["entity_id"])})
    if len(in_flight):
        unique = in_flight.drop_duplicates(INCIDENT_KEY)
        connection.execute(sql.query("recon/queries/in_flight_record.sql"), {
            "domain": domain, "run_id": run.run_id, "seen_at": seen_at,
            "entity_types": _text_array(unique["entity_type"]), "entity_ids": _text_array(unique["entity_id"]),
            "fields": _text_array(unique["field"]), "drift_classes": _text_array(unique["drift_class"])})


def persist_domain_run(
    engine: Engine, run: RunInfo, domain: str, diff: DomainDiff, *, started_at: datetime, policy: IncidentPolicy,
    steps_pending: int = 0,
) -> PersistSummary:
    """Write one domain's run: replaces the partition's findings, updates incidents.

    Only the incidents of entities the diff `checked` can be resolved; a run with
    any entity it could not check (read errors, the time limit) is `partial`. With
    `steps_pending` steps still to follow (repairs, a sync), the row stays `running` and
    the last of them gives it that outcome (`core.run_status`). Entities with a finding in
    flight keep their incidents as they were: the next run settles them. Two runs of the domain
    at once (a backfill's days) take turns for this transaction (`sql.lock_domain_writes`).
    """
    checked = diff.checked
    stored = storable_findings(diff.findings)
    seen_at = datetime.now(UTC)
    counts = counts_by_class(stored.findings)
    status = "partial" if checked.unchecked else "succeeded"
    with engine.begin() as connection:
        sql.lock_domain_writes(connection, domain)
        connection.execute(
            sql.query("recon/queries/upsert_run.sql"),
            {
                "run_id": run.run_id,
                "domain": domain,
                "job_name": run.job_name,
                "partition_key": run.partition_key,
                "started_at": started_at,
                "ledger_sequence": diff.ledger_sequence,
                "db_snapshot_at": diff.db_snapshot_at,
            },
        )
        connection.execute(
            sql.query("recon/queries/delete_findings.sql"),
            {"domain": domain, "run_id": run.run_id, "partition_key": run.partition_key},
        )
        stored = _insert_findings(connection, stored, {"run_id": run.run_id, "partition_key": run.partition_key,
                                                       "db_snapshot_at": diff.db_snapshot_at})
        findings = stored.findings
        in_flight = findings[findings["status"] == FindingStatus.IN_FLIGHT.value]
        seen, opened, confirmed, resolved = _record_incidents(connection, run, domain, drifting(findings), checked,
                                                              in_flight, policy, seen_at)
        _remember_in_flight(connection, run, domain, in_flight, checked, seen_at)
        exempt = _apply_exemptions(connection, run, domain, seen_at)
        record_coverage(connection, domain, run.run_id, checked, seen_at)
        connection.execute(
            sql.query("recon/queries/finish_run.sql"),
            {
                "run_id": run.run_id,
                "domain": domain,
                "finished_at": datetime.now(UTC),
                "status": status,
                "steps_pending": steps_pending,
                "entities_checked": checked.count,
                "entities_unchecked": checked.unchecked,
                "finding_counts": to_json(counts),
                "in_flight": len(in_flight),
            },
        )
    return PersistSummary(
        findings=len(stored.findings),
        counts=counts,
        status=status,
        opened_or_seen=seen,
        confirmed=confirmed,
        resolved=resolved,
        opened=opened,
        exempt=exempt,
        in_flight=len(in_flight),
        storage_errors=stored.storage_errors,
    )
