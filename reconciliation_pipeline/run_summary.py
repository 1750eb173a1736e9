"""What a set of runs found and did, as text a person acts on.

Read from `recon.*` only (the `.sql` files under `sql/recon/summary/`), so it
describes any runs of any deployment: `make demo` prints it after its runs, and
a command that launches runs can print it after them. CRITICAL comes first;
every domain gets its status, findings, what happened to its incidents, the
repairs planned and applied and the money open drift puts at stake (exact, in
the asset's units); then the alerts sent, what "partial" meant for these runs,
and what to run next.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.drift import Severity

SEVERITIES = (Severity.CRITICAL.value, Severity.WARN.value, Severity.INFO.value)
"""In `recon.severity_rank` order."""
CRITICAL_SHOWN = 10
RESOLVED_SHOWN = 8
UNREAD_SHOWN = 8


@dataclass(frozen=True)
class DomainRun:
    """One domain's row of one run (`recon.runs`)."""

    run_id: str
    domain: str
    job_name: str | None
    partition_key: str | None
    status: str
    status_note: str | None
    error: str | None
    dry_run: bool
    entities_checked: int
    entities_unchecked: int
    repairs_planned: int
    repairs_applied: int
    repairs_skipped: int
    repairs_failed: int
    repairs_refused: int


@dataclass(frozen=True)
class FindingCount:
    severity: str
    domain: str
    drift_class: str
    findings: int


@dataclass(frozen=True)
class Money:
    """An exact amount in an asset's base units."""

    amount: int
    decimals: int
    asset: str

    def __str__(self) -> str:
        return f"{format_units(self.amount, self.decimals)} {self.asset}"


@dataclass(frozen=True)
class CriticalFinding:
    domain: str
    entity_type: str
    entity_id: str
    field: str
    drift_class: str
    db_value: str | None
    chain_value: str | None
    at_stake: Money | None


@dataclass(frozen=True)
class IncidentChanges:
    opened: int = 0
    confirmed: int = 0
    resolved: int = 0


@dataclass(frozen=True)
class ResolvedIncident:
    incident_id: int
    domain: str
    entity_id: str
    field: str
    drift_class: str
    severity: str


@dataclass(frozen=True)
class AlertMessage:
    channel: str
    kind: str
    route: str
    status: str
    incidents: int
    worst_severity: str
    domains: tuple[str, ...]
    first_entities: tuple[str, ...]


@dataclass(frozen=True)
class UnreadEntity:
    domain: str
    entity_type: str
    entity_id: str
    reason: str


@dataclass(frozen=True)
class RunSummary:
    run_ids: tuple[str, ...]
    runs: tuple[DomainRun, ...]
    findings: tuple[FindingCount, ...]
    critical: tuple[CriticalFinding, ...]
    incidents: Mapping[str, IncidentChanges]
    resolved: tuple[ResolvedIncident, ...]
    money: Mapping[str, tuple[Money, ...]]
    """Per domain: what its open drift puts at stake, per asset (recon.open_drift_amounts)."""
    alerts: tuple[AlertMessage, ...]
    unread: tuple[UnreadEntity, ...]
    findings_assets: Mapping[str, str] = field(default_factory=dict)
    """Per domain: its discrepancies asset (for the UI link)."""

    @property
    def domains(self) -> list[str]:
        return sorted({run.domain for run in self.runs} | {f.domain for f in self.findings})

    def total(self, severity: str | None = None, domain: str | None = None) -> int:
        return sum(f.findings for f in self.findings
                   if (severity is None or f.severity == severity) and (domain is None or f.domain == domain))


def format_units(amount: int, decimals: int) -> str:
    """`amount` base units in whole units, exactly: grouped thousands, trailing zeros cut to two places."""
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**decimals)
    if decimals == 0:
        return f"{sign}{whole:,}"
    digits = f"{fraction:0{decimals}d}".rstrip("0").ljust(min(2, decimals), "0")
    return f"{sign}{whole:,}.{digits}"


def _asset_label(row: Mapping[str, Any]) -> str:
    """The asset's code, else its token contract shortened (C...: a Soroban token without a code)."""
    if row["asset_code"]:
        return row["asset_code"]
    contract = row["asset_contract_id"] or "?"
    return f"of token {contract[:4]}…{contract[-4:]}" if len(contract) > 12 else contract


def _money(row: Mapping[str, Any]) -> Money | None:
    amount: Decimal | None = row["amount_at_stake"]
    if amount is None or row["asset_decimals"] is None:
        return None
    return Money(int(amount), int(row["asset_decimals"]), _asset_label(row))


def load_run_summary(engine: Engine, run_ids: Sequence[str]) -> RunSummary:
    """Everything the summary says about `run_ids`, read from recon.*."""
    ids = list(run_ids)
    params = {"run_ids": ids}
    with engine.connect() as connection:
        def rows(query: str, **extra: Any) -> list[Mapping[str, Any]]:
            return list(connection.execute(sql.query(f"recon/summary/{query}"), {**params, **extra}).mappings())

        runs = tuple(DomainRun(**row) for row in rows("runs.sql"))
        findings = tuple(FindingCount(**row) for row in rows("findings.sql"))
        domains = sorted({r.domain for r in runs} | {f.domain for f in findings})
        critical = tuple(
            CriticalFinding(domain=row["domain"], entity_type=row["entity_type"], entity_id=row["entity_id"],
                            field=row["field"], drift_class=row["drift_class"], db_value=row["db_value"],
                            chain_value=row["chain_value"], at_stake=_money(row))
            for row in rows("critical_findings.sql", limit=CRITICAL_SHOWN))
        incidents = {row["domain"]: IncidentChanges(row["opened"], row["confirmed"], row["resolved"])
                     for row in rows("incident_changes.sql")}
        resolved = tuple(ResolvedIncident(**row) for row in rows("resolved_incidents.sql", limit=RESOLVED_SHOWN))
        money: dict[str, list[Money]] = {}
        for row in rows("open_money.sql", domains=domains):
            if (amount := _money(row)) is not None:
                money.setdefault(row["domain"], []).append(amount)
        alerts = tuple(
            AlertMessage(channel=row["channel"], kind=row["kind"], route=row["route"], status=row["status"],
                         incidents=row["incidents"], worst_severity=SEVERITIES[row["worst_rank"]],
                         domains=tuple(row["domains"]), first_entities=tuple(row["first_entities"]))
            for row in rows("alert_messages.sql"))
        unread = tuple(UnreadEntity(**row) for row in rows("unread_entities.sql", limit=UNREAD_SHOWN))
    return RunSummary(run_ids=tuple(ids), runs=runs, findings=findings, critical=critical, incidents=incidents,
                      resolved=resolved, money={d: tuple(m) for d, m in money.items()}, alerts=alerts,
                      unread=unread)


def _findings_assets(domains: Sequence[str]) -> dict[str, str]:
    """Each domain's discrepancies asset, from its spec (only needed for the UI link)."""
    from reconciliation_pipeline.catalog import built_domains

    built = built_domains()
    return {d: f"{built[d].spec.findings_asset}_discrepancies" for d in domains if d in built}


def _values(db_value: str | None, chain_value: str | None) -> str:
    if db_value is None and chain_value is None:
        return ""
    return f": database {db_value if db_value is not None else '(none)'} vs chain " \
           f"{chain_value if chain_value is not None else '(none)'}"


def _table(rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                             for i, cell in enumerate(row)).rstrip() for row in rows]


def _run_label(runs: Sequence[DomainRun], run_id: str) -> str:
    mine = [r for r in runs if r.run_id == run_id]
    if not mine:
        return f"{run_id} (no recon.runs row: it reconciled nothing)"
    first = mine[0]
    partition = f", partition {first.partition_key}" if first.partition_key else ""
    repairs = "" if not any(r.repairs_applied or r.repairs_skipped or r.repairs_failed for r in mine) else \
        ", repairs applied"
    return f"{run_id} {first.job_name or '(unknown job)'}{partition}{repairs}: {', '.join(r.domain for r in mine)}"


def _status(runs: Sequence[DomainRun]) -> str:
    """A domain's status over the runs (the worst of them)."""
    order = ("failed", "running", "partial", "recomputed", "succeeded")
    return min((r.status for r in runs), key=lambda s: order.index(s) if s in order else 0)


def _domain_rows(summary: RunSummary) -> list[list[str]]:
    header = ["domain", "status", "CRITICAL", "WARN", "INFO", "findings", "new", "confirmed", "resolved",
              "repairs planned/applied", "open money at stake"]
    rows = [header]
    for domain in summary.domains:
        runs = [r for r in summary.runs if r.domain == domain]
        changes = summary.incidents.get(domain, IncidentChanges())
        planned = sum(r.repairs_planned for r in runs)
        applied = sum(r.repairs_applied for r in runs)
        money = "; ".join(str(m) for m in summary.money.get(domain, ())) or "-"
        rows.append([domain, _status(runs) if runs else "-",
                     *(str(summary.total(s, domain)) for s in SEVERITIES), str(summary.total(domain=domain)),
                     str(changes.opened), str(changes.confirmed), str(changes.resolved), f"{planned}/{applied}",
                     money])
    totals = [sum(c.opened for c in summary.incidents.values()), sum(c.confirmed for c in summary.incidents.values()),
              sum(c.resolved for c in summary.incidents.values())]
    rows.append(["total", "", *(str(summary.total(s)) for s in SEVERITIES), str(summary.total()),
                 *map(str, totals), f"{sum(r.repairs_planned for r in summary.runs)}/"
                 f"{sum(r.repairs_applied for r in summary.runs)}", ""])
    return rows


def render_run_summary(engine: Engine, run_ids: Sequence[str], *, ui_url: str | None = None) -> str:
    """The summary of `run_ids` as text; `ui_url` (the Dagster UI) adds a link to the discrepancies asset."""
    summary = load_run_summary(engine, run_ids)
    assets = _findings_assets(summary.domains) if ui_url else {}
    return format_run_summary(summary, ui_url=ui_url, findings_assets=assets)


def format_run_summary(summary: RunSummary, *, ui_url: str | None = None,
                       findings_assets: Mapping[str, str] | None = None) -> str:
    lines: list[str] = ["Runs:"]
    lines += [f"  {_run_label(summary.runs, run_id)}" for run_id in summary.run_ids]

    totals = ", ".join(f"{summary.total(s)} {s}" for s in SEVERITIES)
    lines += ["", f"Findings: {summary.total()} ({totals})"]
    if summary.critical:
        lines.append("CRITICAL first:")
        for finding in summary.critical:
            money = f" ({finding.at_stake} at stake)" if finding.at_stake is not None else ""
            lines.append(f"  {finding.domain} {finding.entity_type} {finding.entity_id} {finding.drift_class} on "
                         f"{finding.field}{_values(finding.db_value, finding.chain_value)}{money}")
        if summary.total(Severity.CRITICAL.value) > len(summary.critical):
            lines.append(f"  ... and {summary.total(Severity.CRITICAL.value) - len(summary.critical)} more")
    by_class: dict[tuple[str, str], list[str]] = {}
    for count in summary.findings:  # already CRITICAL first, then by domain and class
        by_class.setdefault((count.severity, count.domain), []).append(f"{count.drift_class} {count.findings}")
    if by_class:
        lines.append("By severity, domain and class:")
        lines += _table([[severity, domain, ", ".join(classes)] for (severity, domain), classes in by_class.items()])

    lines += ["", "By domain (new / confirmed / resolved: what these runs did to incidents; money: open drift now):"]
    lines += _table(_domain_rows(summary), right=frozenset({2, 3, 4, 5, 6, 7, 8}))
    if summary.resolved:
        lines.append("Resolved by these runs:")
        lines += [f"  #{r.incident_id} [{r.severity}] {r.domain} {r.entity_id} {r.drift_class} on {r.field}"
                  for r in summary.resolved]
    recomputed = [r for r in summary.runs if r.status == "recomputed"]
    for run in recomputed:
        lines.append(f"  {run.domain} in {run.run_id}: recomputed, nothing compared ({run.status_note})")
    for run in (r for r in summary.runs if r.status == "failed"):
        lines.append(f"  {run.domain} in {run.run_id} FAILED: {run.error}")

    lines += ["", "Alerts sent:"]
    if summary.alerts:
        for alert in summary.alerts:
            what = "resolved notice" if alert.kind == "resolve" else f"[{alert.worst_severity}]"
            failed = "" if alert.status == "sent" else f" ({alert.status.upper()})"
            lines.append(f"  {alert.channel}{failed}, route {alert.route}: {what} {alert.incidents} incident"
                         f"{'s' if alert.incidents != 1 else ''} in {', '.join(alert.domains)}: "
                         f"{', '.join(alert.first_entities)}{', ...' if alert.incidents > 3 else ''}")
    else:
        lines.append("  none yet: the drift_incident_alerts sensor sends them (by default CRITICAL at once, "
                     "the rest once confirmed by a second run)")

    # A domain run twice (a repair run, then the nightly) is told once, by its latest run.
    latest = {run.domain: run for run in summary.runs}
    partial = [run for run in latest.values() if run.status == "partial"]
    if partial:
        lines += ["", *textwrap.wrap(
            "Partial means some entities the run knew of could not be compared (an unreadable entry, a failed "
            "read, the time limit): each is a finding of its own (CHAIN_READ_ERROR), the next run compares it "
            "again, and none of its incidents resolves meanwhile. Here:", 100)]
        for run in partial:
            lines.append(f"  {run.domain}: {run.entities_unchecked} of "
                         f"{run.entities_checked + run.entities_unchecked} not compared")
        lines += [f"    {u.domain} {u.entity_type} {u.entity_id}: {u.reason}" for u in summary.unread]

    quoted = ", ".join(f"'{run_id}'" for run_id in summary.run_ids)
    lines += ["", "Next:",
              f"  SELECT severity, domain, entity_id, field, drift_class, db_value, chain_value, delta "
              f"FROM recon.discrepancies WHERE run_id IN ({quoted}) ORDER BY recon.severity_rank(severity), domain;",
              "  SELECT domain, asset_code, incidents, amount_at_stake_units FROM recon.open_drift_amounts;",
              "  SELECT change, domain, entity_id, field, drift_class, severity FROM recon.run_changes "
              "ORDER BY severity_rank, change;"]
    worst = _worst_domain(summary)
    if ui_url and worst is not None and findings_assets and worst in findings_assets:
        lines.append(f"  In the UI: {ui_url.rstrip('/')}/assets/{findings_assets[worst]} (the {worst} findings, "
                     "their checks, and drift counts plotted across runs)")
    return "\n".join(lines) + "\n"


def _worst_domain(summary: RunSummary) -> str | None:
    """The domain to look at first: most CRITICAL findings, then most findings."""
    if not summary.domains:
        return None
    return max(summary.domains, key=lambda d: (summary.total(Severity.CRITICAL.value, d), summary.total(domain=d), d))
