"""Alerts on drift incidents and failed runs: routed, grouped, once per problem.

On-call engineers must be woken only when it matters, once per problem, and
with one message per batch, not one per incident:

- a route (`core.alert_routes`, from `ALERT_ROUTES_FILE` or the defaults)
  takes an incident by domain and severity and alerts on it `immediately` or
  `once_confirmed` (it persisted across runs or outlived the grace period, so
  an in-flight write never pages anyone);
- the incidents that alert now are grouped per (route, run): each channel of
  the route gets one message listing them (PagerDuty one event per incident,
  the incident being its dedup key), with a runbook link per drift class;
- an acknowledged incident alerts nowhere until its acknowledgement expires,
  an exempt one never; a reopened incident alerts again unless it alerted on
  the same route within the route's suppression interval;
- when an incident that alerted resolves (a run no longer sees it, or on-call
  resolved it), the channels that got the alert get a resolved notice
  (PagerDuty: resolve with the same dedup key).

Each incident occurrence and kind (trigger, resolve) is recorded in
`recon.alerts` with the channels that took it, which is what makes it alert
once: a channel that failed is retried on later ticks (until `max_attempts`),
the others are not sent it twice. Every message is recorded in
`recon.alert_messages`. A run-failure sensor alerts on failed runs. A failed
asset check does not fail its run, so drift is alerted from incidents, never
from run status.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import dagster as dg
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.alert_channels import (
    RESOLVE,
    TRIGGER,
    Batch,
    EmailSender,
    LogSender,
    PagerDutySender,
    Sender,
    SlackSender,
    clip,
)
from reconciliation_pipeline.core.alert_routes import (
    IMMEDIATELY,
    ONCE_CONFIRMED,
    PAGERDUTY_VARIABLE,
    ROUTES_FILE_VARIABLE,
    SMTP_PASSWORD_VARIABLE,
    WEBHOOK_VARIABLE,
    AlertConfigError,
    EmailChannel,
    LogChannel,
    PagerDutyChannel,
    RoutesConfig,
    SlackChannel,
    default_routes,
    load_routes,
)
from reconciliation_pipeline.core.drift import Severity
from reconciliation_pipeline.core.json_text import to_json
from reconciliation_pipeline.core.metadata import origin_text
from reconciliation_pipeline.core.metrics import is_http_url
from reconciliation_pipeline.core.redaction import keep_out_of_logs, url_secrets
from reconciliation_pipeline.settings import configured, setting_text

CURSOR_OVERLAP = timedelta(minutes=15)
"""Incidents touched up to this long before the cursor are looked at again (late commits)."""
MAX_ALERTS_PER_TICK = 200
_SLACK_HEADER_LIMIT = 150
_SLACK_FIELD_LIMIT = 1900

Logger = logging.Logger | logging.LoggerAdapter


XDR_DETAILS = frozenset({"raw_xdr", "ledger_key"})
"""Details that hold base64 XDR: kept in recon.discrepancies.details, never put in an alert."""


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else None


@dataclass(frozen=True)
class IncidentAlert:
    """One incident occurrence due an alert (or a resolved notice), with what on-call needs to act."""

    incident_id: int
    occurrence: int
    domain: str
    entity_type: str
    entity_id: str
    field: str
    drift_class: str
    severity: str
    state: str
    first_seen_at: datetime
    last_seen_at: datetime
    consecutive_runs: int
    last_run_id: str
    db_value: str | None
    chain_value: str | None
    delta: str | None
    details: Mapping[str, Any]
    asset_code: str | None = None
    asset_issuer: str | None = None
    asset_contract_id: str | None = None
    amount_at_stake: str | None = None
    runbook: str | None = None
    resolution: str | None = None
    resolution_note: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        return cls(
            incident_id=int(row["incident_id"]),
            occurrence=int(row["occurrence"]),
            domain=row["domain"],
            entity_type=row["entity_type"],
            entity_id=row["entity_id"],
            field=row["field"],
            drift_class=row["drift_class"],
            severity=row["severity"],
            state=row["state"],
            first_seen_at=row["first_seen_at"],
            last_seen_at=row["last_seen_at"],
            consecutive_runs=int(row["consecutive_runs"]),
            last_run_id=row["last_run_id"],
            db_value=row["last_db_value"],
            chain_value=row["last_chain_value"],
            delta=row["last_delta"],
            details=row["details"] or {},
            asset_code=row.get("asset_code"),
            asset_issuer=row.get("asset_issuer"),
            asset_contract_id=row.get("asset_contract_id"),
            amount_at_stake=row.get("amount_at_stake"),
            resolution=row.get("resolution"),
            resolution_note=row.get("resolution_note"),
        )

    @property
    def asset_label(self) -> str | None:
        if self.asset_code is not None and self.asset_issuer is not None:
            return f"{self.asset_code}:{self.asset_issuer}"
        return self.asset_contract_id

    @property
    def origin(self) -> str | None:
        """Where the chain value came from: the ledger, its close time, the transaction and operation."""
        return origin_text(self.details)

    @property
    def db_written_at(self) -> str | None:
        return self.details.get("db_written_at")

    @property
    def summary(self) -> str:
        text = f"[{self.severity}] {self.domain}: {self.entity_type} {self.entity_id} {self.drift_class} on {self.field}"
        if self.db_value is not None or self.chain_value is not None:
            text = f"{text} (database {self.db_value} vs chain {self.chain_value})"
        if self.origin is not None:
            text = f"{text}; chain written in {self.origin}"
        if self.db_written_at is not None:
            text = f"{text}; database row written {self.db_written_at}"
        return text

    def record(self) -> dict[str, Any]:
        """The structured-log form: flat keys, JSON-safe values (raw XDR left in recon.discrepancies)."""
        return {
            "incident_id": self.incident_id,
            "occurrence": self.occurrence,
            "severity": self.severity,
            "domain": self.domain,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "field": self.field,
            "drift_class": self.drift_class,
            "state": self.state,
            "db_value": self.db_value,
            "chain_value": self.chain_value,
            "delta": self.delta,
            "asset": self.asset_label,
            "amount_at_stake": self.amount_at_stake,
            "first_seen_at": _iso(self.first_seen_at),
            "last_seen_at": _iso(self.last_seen_at),
            "consecutive_runs": self.consecutive_runs,
            "last_run_id": self.last_run_id,
            "chain_written": self.origin,
            "db_written_at": self.db_written_at,
            "runbook": self.runbook,
            **({"resolution": self.resolution, "resolution_note": self.resolution_note}
               if self.resolution is not None else {}),
            "details": {k: v for k, v in self.details.items() if k not in XDR_DETAILS},
        }


@dataclass(frozen=True)
class RunFailureAlert:
    job_name: str
    run_id: str
    message: str
    step_errors: tuple[str, ...]
    unfinished_domains: tuple[str, ...] = ()
    """Domains whose recon.runs row this failure left `running` (now marked `failed`)."""

    def record(self) -> dict[str, Any]:
        return {"event": "run_failure_alert", "severity": Severity.CRITICAL.value, "job_name": self.job_name,
                "run_id": self.run_id, "message": self.message, "step_errors": list(self.step_errors),
                "unfinished_domains": list(self.unfinished_domains)}

    def webhook_payload(self) -> dict[str, Any]:
        errors = "\n".join(f"• {clip(e, 300)}" for e in self.step_errors[:5]) or "(no step error recorded)"
        if self.unfinished_domains:
            errors += f"\nNever finished (marked failed in recon.runs): {', '.join(self.unfinished_domains)}"
        return {
            "text": f"[CRITICAL] run of {self.job_name} failed ({self.run_id})",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": clip(
                    f"Reconciliation run failed: {self.job_name}", _SLACK_HEADER_LIMIT)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": clip(
                    f"*Run* `{self.run_id}`\n{self.message}\n{errors}", _SLACK_FIELD_LIMIT)}},
            ],
        }


class AlertingResource(dg.ConfigurableResource):
    """Where alerts go: the routes file (`ALERT_ROUTES_FILE`) or the default routes, and the secrets
    of its channels. Secrets come from environment variables, read through `EnvVar` when the sensor
    starts: the standard ones unless these fields set them, and any other variable a channel names. None
    is ever logged: errors name a webhook's host only, and the variable, never the value."""

    routes_file: str | None = None
    """None, like each field below: its variable (ALERT_ROUTES_FILE, ...) when the sensor starts, else empty."""
    webhook_url: str | None = None
    pagerduty_routing_key: str | None = None
    smtp_password: str | None = None
    timeout_ms: int = 5000
    max_attempts: int = 3
    """Delivery attempts per incident occurrence and channel (one per sensor tick) before giving up."""
    _routes: RoutesConfig | None = PrivateAttr(default=None)
    _senders: dict[str, Sender] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.configure()

    def _secret(self, variable: str) -> str:
        standard = {WEBHOOK_VARIABLE: self.webhook_url, PAGERDUTY_VARIABLE: self.pagerduty_routing_key,
                    SMTP_PASSWORD_VARIABLE: self.smtp_password}
        if variable in standard:
            return configured(standard[variable], variable, setting_text)
        return dg.EnvVar(variable).get_value() or ""

    def configure(self) -> tuple[RoutesConfig, dict[str, Sender]]:
        """The routes and a sender per channel, validated once; a clear error naming what is wrong."""
        if self._routes is not None and self._senders is not None:
            return self._routes, self._senders
        webhook_url = self._secret(WEBHOOK_VARIABLE)
        routes_file = configured(self.routes_file, ROUTES_FILE_VARIABLE, setting_text)
        if webhook_url and not is_http_url(webhook_url):
            raise dg.DagsterInvariantViolationError(
                f"{WEBHOOK_VARIABLE} must be an http(s) URL or empty, got a value that is not")
        if self.timeout_ms <= 0 or self.max_attempts < 1:
            raise dg.DagsterInvariantViolationError("alert timeout must be positive and max_attempts at least 1")
        try:
            routes = load_routes(routes_file) if routes_file else default_routes(bool(webhook_url))
        except AlertConfigError as error:
            raise dg.DagsterInvariantViolationError(f"{ROUTES_FILE_VARIABLE}: {error}") from None
        timeout_s = self.timeout_ms / 1000
        senders: dict[str, Sender] = {}
        for name, channel in routes.channels.items():
            if isinstance(channel, LogChannel):
                senders[name] = LogSender(name)
                continue
            variable = routes.secret_variables().get(name)
            secret = self._secret(variable) if variable is not None else ""
            if variable is not None and not secret:
                raise dg.DagsterInvariantViolationError(
                    f"alert channel {name!r} needs the environment variable {variable}, which is empty or unset")
            keep_out_of_logs(*(url_secrets(secret) if isinstance(channel, SlackChannel) else (secret,)))
            if isinstance(channel, SlackChannel):
                if not is_http_url(secret):
                    raise dg.DagsterInvariantViolationError(
                        f"{variable} (alert channel {name!r}) must be an http(s) URL, got a value that is not")
                senders[name] = SlackSender(name, secret, timeout_s)
            elif isinstance(channel, PagerDutyChannel):
                senders[name] = PagerDutySender(name, channel, secret, timeout_s)
            elif isinstance(channel, EmailChannel):
                senders[name] = EmailSender(name, channel, secret or None, timeout_s)
        self._routes, self._senders = routes, senders
        return routes, senders


@dataclass
class _Due:
    """An incident occurrence due on some channels of its route now."""

    alert: IncidentAlert
    kind: str
    route: str
    run_id: str | None
    channels: tuple[str, ...]
    """Every channel it is for."""
    delivered: list[str]
    """Channels that have taken it (before this tick, and during it)."""
    attempts: int
    errors: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[str]:
        return [c for c in self.channels if c not in self.delivered]


@dataclass(frozen=True)
class DispatchOutcome:
    messages_sent: int
    messages_failed: int
    incidents_alerted: int
    resolved_notices: int
    suppressed: int
    cursor: str | None

    @property
    def summary(self) -> str:
        return (f"alerts: {self.messages_sent} messages sent ({self.incidents_alerted} incidents alerted, "
                f"{self.resolved_notices} resolved notices), {self.messages_failed} failed, "
                f"{self.suppressed} suppressed")


def _immediate_severities(routes: RoutesConfig) -> list[str]:
    """Severities some `immediately` route can take: only these alert before confirmation (narrows the scan)."""
    return [s.value for s in Severity
            if any(r.notify == IMMEDIATELY and (not r.severities or s in r.severities) for r in routes.routes)]


def _triggers(rows: list[Mapping[str, Any]], routes: RoutesConfig, now: datetime,
              suppressed: list[_Due]) -> list[_Due]:
    due: list[_Due] = []
    for row in rows:
        alert = IncidentAlert.from_row(row)
        route = routes.route_for(alert.domain, alert.severity)
        if route is None or (route.notify == ONCE_CONFIRMED and alert.state != "confirmed"):
            continue
        alert = replace(alert, runbook=routes.runbook(alert.drift_class))
        item = _Due(alert, TRIGGER, route.name, alert.last_run_id, route.channels, list(row["sinks"] or []),
                    int(row["attempts"]))
        window = timedelta(minutes=routes.suppression_minutes(route))
        previous = row["previous_sent_at"]
        if (window and row["previous_route"] == route.name and previous is not None
                and previous > now - window and not item.delivered):
            suppressed.append(item)
            continue
        due.append(item)
    return due


def _resolves(rows: list[Mapping[str, Any]], routes: RoutesConfig) -> list[_Due]:
    due: list[_Due] = []
    for row in rows:
        alert = replace(IncidentAlert.from_row(row), runbook=routes.runbook(row["drift_class"]))
        # Only the channels that got the alert get its resolved notice (those still configured).
        reached = tuple(c for c in row["trigger_sinks"] if c in routes.channels)
        if reached:
            due.append(_Due(alert, RESOLVE, row["trigger_route"], row["resolved_run_id"], reached,
                            list(row["sinks"] or []), int(row["attempts"])))
    return due


def _record_message(engine: Engine, sender: Sender, batch: Batch, results: Mapping[int, str | None]) -> None:
    failed = [e for e in results.values() if e is not None]
    with engine.begin() as connection:
        connection.execute(sql.query("recon/queries/alert_message_record.sql"), {
            "route": batch.route, "channel": sender.name, "channel_type": sender.channel_type, "kind": batch.kind,
            "run_id": batch.run_id, "incident_ids": [a.incident_id for a in batch.alerts],
            "status": "failed" if failed else "sent", "error": failed[0] if failed else None,
            "payload": to_json(sender.payload(batch)),
        })


def _record(engine: Engine, items: list[_Due], status_of: Any) -> None:
    if not items:
        return
    with engine.begin() as connection:
        connection.execute(sql.query("recon/queries/alert_record.sql"), [
            {"incident_id": d.alert.incident_id, "occurrence": d.alert.occurrence, "kind": d.kind,
             "severity": d.alert.severity, "route": d.route, "run_id": d.run_id, "status": status_of(d),
             "channels": list(d.channels), "sinks": d.delivered, "error": d.errors[-1] if d.errors else None,
             "payload": to_json(d.alert.record())}
            for d in items
        ])


def dispatch_incident_alerts(
    engine: Engine,
    alerting: AlertingResource,
    log: Logger,
    cursor: str | None,
    *,
    now: datetime | None = None,
    max_alerts: int = MAX_ALERTS_PER_TICK,
) -> DispatchOutcome:
    """Alert every incident due one since `cursor` (an ISO time), grouped; returns the next cursor.

    Once-only delivery rests on `recon.alerts`, not on the cursor: the cursor only
    narrows the scan, with an overlap so a run that committed late is not missed.
    `now` is the moment acknowledgements and suppression intervals are measured at.
    """
    routes, senders = alerting.configure()
    now = now or datetime.now(UTC)
    since = (datetime.fromisoformat(cursor) - CURSOR_OVERLAP) if cursor else datetime(1970, 1, 1, tzinfo=UTC)
    params = {"since": since, "now": now, "max_attempts": alerting.max_attempts, "max_alerts": max_alerts}
    with engine.connect() as connection:
        high_water = connection.execute(sql.query("recon/queries/alert_high_water.sql"), params).scalar_one()
        trigger_rows = connection.execute(sql.query("recon/queries/alert_candidates.sql"), {
            **params, "immediate_severities": _immediate_severities(routes)}).mappings().all()
        resolve_rows = connection.execute(sql.query("recon/queries/alert_resolve_candidates.sql"),
                                          params).mappings().all()
    suppressed: list[_Due] = []
    due = _triggers(list(trigger_rows), routes, now, suppressed) + _resolves(list(resolve_rows), routes)
    _record(engine, suppressed, lambda _: "suppressed")

    groups: dict[tuple[str, str, str | None], list[_Due]] = defaultdict(list)
    for item in due:
        groups[(item.kind, item.route, item.run_id)].append(item)
    sent = failed = 0
    for (kind, route, run_id), items in groups.items():
        channels = list(dict.fromkeys(c for item in items for c in item.pending))
        for channel in channels:
            batch_items = [item for item in items if channel in item.pending]
            batch = Batch(kind, route, run_id, tuple(item.alert for item in batch_items))
            results = senders[channel].send(batch, log)
            _record_message(engine, senders[channel], batch, results)
            for item in batch_items:
                error = results.get(item.alert.incident_id)
                if error is None:
                    item.delivered.append(channel)
                else:
                    item.errors.append(f"{channel}: {error}")
            if any(e is not None for e in results.values()):
                failed += 1
            else:
                sent += 1
    _record(engine, due, lambda d: "failed" if d.pending else "sent")

    truncated = len(trigger_rows) >= max_alerts or len(resolve_rows) >= max_alerts
    # A truncated scan keeps the cursor: what it did not reach is looked at next tick.
    next_cursor = cursor if truncated else (high_water.astimezone(UTC).isoformat() if high_water else cursor)
    return DispatchOutcome(
        messages_sent=sent, messages_failed=failed,
        incidents_alerted=sum(1 for d in due if d.kind == TRIGGER and not d.pending),
        resolved_notices=sum(1 for d in due if d.kind == RESOLVE and not d.pending),
        suppressed=len(suppressed), cursor=next_cursor,
    )


def alert_run_failure(engine: Engine, alerting: AlertingResource, alert: RunFailureAlert, log: Logger) -> int:
    """Send a failed run to the routes' run-failure channels; returns how many took it."""
    routes, senders = alerting.configure()
    delivered = 0
    for channel in routes.run_failures:
        sender = senders[channel]
        error = sender.send_run_failure(alert, log)
        delivered += error is None
        with engine.begin() as connection:
            connection.execute(sql.query("recon/queries/alert_message_record.sql"), {
                "route": "run_failures", "channel": channel, "channel_type": sender.channel_type,
                "kind": "run_failure", "run_id": alert.run_id, "incident_ids": [],
                "status": "sent" if error is None else "failed", "error": error,
                "payload": to_json(alert.record())})
    return delivered


def _root_cause(error: Any) -> str:
    """The innermost error's message: Dagster wraps a step's exception in its own."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(error.message).strip()


def run_failure_alert(context: dg.RunFailureSensorContext,
                      unfinished_domains: tuple[str, ...] = ()) -> RunFailureAlert:
    step_errors = tuple(
        f"{event.step_key}: {_root_cause(event.event_specific_data.error)}"
        for event in context.get_step_failure_events()
        if event.event_specific_data is not None and getattr(event.event_specific_data, "error", None)
    )
    return RunFailureAlert(
        job_name=context.dagster_run.job_name,
        run_id=context.dagster_run.run_id,
        message=context.failure_event.message or "run failed",
        step_errors=step_errors,
        unfinished_domains=unfinished_domains,
    )
