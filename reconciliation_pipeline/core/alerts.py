"""Alerts on drift incidents and failed runs, routed by severity.

On-call engineers must be woken only when it matters, and once per problem:

- `CRITICAL` incidents alert at once (the first run that sees them);
- `WARN` and `INFO` incidents alert once confirmed (they persisted across runs
  or outlived the grace period), so an in-flight write never pages anyone;
- `INFO` goes to the structured log only, the others to the webhook as well.

Every alert is written to the structured log; a webhook (Slack-compatible JSON)
receives it when `ALERT_WEBHOOK_URL` is set. Each incident occurrence is
recorded in `recon.alerts`, which is what makes it alert once, not every run.
A sensor (`defs/alerting`) reads incidents touched since its cursor; a
run-failure sensor alerts on failed runs. A failed asset check does not fail its run, so drift is
alerted from incidents, never from run status.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import dagster as dg
import requests
from sqlalchemy.engine import Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.drift import Severity
from reconciliation_pipeline.core.metadata import origin_text
from reconciliation_pipeline.core.metrics import is_http_url, redact_url

WEBHOOK_VARIABLE = "ALERT_WEBHOOK_URL"
LOG_SINK = "log"
WEBHOOK_SINK = "webhook"
CURSOR_OVERLAP = timedelta(minutes=15)
"""Incidents touched up to this long before the cursor are looked at again (late commits)."""
MAX_ALERTS_PER_TICK = 200
_SLACK_FIELD_LIMIT = 1900
_SLACK_HEADER_LIMIT = 150
_LOG_LEVELS = {Severity.CRITICAL.value: logging.ERROR, Severity.WARN.value: logging.WARNING,
               Severity.INFO.value: logging.INFO}

Logger = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class Route:
    name: str
    """`immediate` (as soon as a run sees it) or `confirmed` (once the incident is confirmed)."""
    sinks: tuple[str, ...]


ROUTES: Mapping[str, Route] = {
    Severity.CRITICAL.value: Route("immediate", (LOG_SINK, WEBHOOK_SINK)),
    Severity.WARN.value: Route("confirmed", (LOG_SINK, WEBHOOK_SINK)),
    Severity.INFO.value: Route("confirmed", (LOG_SINK,)),
}
IMMEDIATE_SEVERITIES = [severity for severity, route in ROUTES.items() if route.name == "immediate"]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else None


@dataclass(frozen=True)
class IncidentAlert:
    """One incident occurrence due an alert, with what an on-call engineer needs to act."""

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
        )

    @property
    def route(self) -> Route:
        return ROUTES[self.severity]

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
        """The structured-log form: flat keys, JSON-safe values."""
        return {
            "event": "drift_alert",
            "route": self.route.name,
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
            "first_seen_at": _iso(self.first_seen_at),
            "last_seen_at": _iso(self.last_seen_at),
            "consecutive_runs": self.consecutive_runs,
            "last_run_id": self.last_run_id,
            "chain_written": self.origin,
            "db_written_at": self.db_written_at,
            "details": dict(self.details),
        }

    def webhook_payload(self) -> dict[str, Any]:
        """Slack-compatible JSON: `text` for notifications, `blocks` for the message."""
        context = {k: v for k, v in self.details.items() if k not in ("raw_xdr",)}
        fields = [
            ("Drift", f"{self.drift_class} on `{self.field}`"),
            ("Entity", f"{self.entity_type} `{self.entity_id}`"),
            ("Database", f"`{self.db_value}`"),
            ("Chain", f"`{self.chain_value}`"),
            ("Seen", f"since {_iso(self.first_seen_at)}, {self.consecutive_runs} consecutive run(s)"),
            ("Incident", f"#{self.incident_id} ({self.state}, occurrence {self.occurrence})"),
        ]
        if self.delta is not None:
            fields.append(("Delta (chain − database)", f"`{self.delta}`"))
        if self.origin is not None:
            fields.append(("Chain written", self.origin))
        if self.db_written_at is not None:
            fields.append(("Database row written", self.db_written_at))
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(
                f"{self.severity} drift in {self.domain}: {self.entity_id}", _SLACK_HEADER_LIMIT)}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": _clip(f"*{name}*\n{value}", _SLACK_FIELD_LIMIT)} for name, value in fields
            ]},
        ]
        if context:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(
                "*Details*\n```" + json.dumps(context, sort_keys=True, default=str) + "```", _SLACK_FIELD_LIMIT)}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(
            f"Query: SELECT * FROM recon.drift_incidents WHERE incident_id = {self.incident_id}; "
            f"last run {self.last_run_id}", _SLACK_FIELD_LIMIT)}]})
        return {"text": self.summary, "blocks": blocks}


@dataclass(frozen=True)
class RunFailureAlert:
    job_name: str
    run_id: str
    message: str
    step_errors: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        return {"event": "run_failure_alert", "severity": Severity.CRITICAL.value, "job_name": self.job_name,
                "run_id": self.run_id, "message": self.message, "step_errors": list(self.step_errors)}

    def webhook_payload(self) -> dict[str, Any]:
        errors = "\n".join(f"• {_clip(e, 300)}" for e in self.step_errors[:5]) or "(no step error recorded)"
        return {
            "text": f"[CRITICAL] run of {self.job_name} failed ({self.run_id})",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": _clip(
                    f"Reconciliation run failed: {self.job_name}", _SLACK_HEADER_LIMIT)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": _clip(
                    f"*Run* `{self.run_id}`\n{self.message}\n{errors}", _SLACK_FIELD_LIMIT)}},
            ],
        }


@dataclass(frozen=True)
class Delivery:
    status: str
    """`sent` (every routed sink took it), `logged` (log only) or `failed` (the webhook did not)."""
    sinks: tuple[str, ...]
    error: str | None = None


class AlertingResource(dg.ConfigurableResource):
    """Alert sinks: the structured log always, a Slack-compatible webhook when its URL is set.

    The webhook URL is a secret (it authorises posting): it is never logged, only its host.
    """

    webhook_url: str = ""
    timeout_ms: int = 5000
    max_attempts: int = 3
    """Delivery attempts per incident occurrence (one per sensor tick) before giving up."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.webhook_url and not is_http_url(self.webhook_url):
            raise dg.DagsterInvariantViolationError(
                f"{WEBHOOK_VARIABLE} must be an http(s) URL or empty, got a value that is not"
            )
        if self.timeout_ms <= 0 or self.max_attempts < 1:
            raise dg.DagsterInvariantViolationError("alert timeout must be positive and max_attempts at least 1")

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.webhook_url)

    def _post(self, payload: Mapping[str, Any]) -> str | None:
        """POST to the webhook; returns an error description (without the URL) or None."""
        try:
            response = requests.post(self.webhook_url, json=payload, timeout=self.timeout_ms / 1000)
        except requests.RequestException as error:
            return f"{type(error).__name__} posting to {redact_url(self.webhook_url)}"
        if not 200 <= response.status_code < 300:
            return f"HTTP {response.status_code} from {redact_url(self.webhook_url)}"
        return None

    def deliver(self, sinks: Sequence[str], level: int, record: Mapping[str, Any],
                payload: Mapping[str, Any], log: Logger) -> Delivery:
        """Log the record, then post the payload if the route and the configuration say so."""
        log.log(level, json.dumps(record, sort_keys=True, default=str))
        if WEBHOOK_SINK not in sinks or not self.webhook_enabled:
            return Delivery("logged", (LOG_SINK,))
        error = self._post(payload)
        if error is not None:
            log.warning(f"alert webhook delivery failed: {error}")
            return Delivery("failed", (LOG_SINK,), error)
        return Delivery("sent", (LOG_SINK, WEBHOOK_SINK))


@dataclass(frozen=True)
class DispatchOutcome:
    sent: int
    logged: int
    failed: int
    cursor: str | None

    @property
    def summary(self) -> str:
        return f"alerts: {self.sent} sent, {self.logged} logged only, {self.failed} failed"


def dispatch_incident_alerts(
    engine: Engine,
    alerting: AlertingResource,
    log: Logger,
    cursor: str | None,
    *,
    max_alerts: int = MAX_ALERTS_PER_TICK,
) -> DispatchOutcome:
    """Alert every incident due one since `cursor` (an ISO time); returns the next cursor.

    Once-only delivery rests on `recon.alerts`, not on the cursor: the cursor only
    narrows the scan, with an overlap so a run that committed late is not missed.
    """
    since = (datetime.fromisoformat(cursor) - CURSOR_OVERLAP) if cursor else datetime(1970, 1, 1, tzinfo=UTC)
    with engine.connect() as connection:
        high_water = connection.execute(sql.query("recon/queries/alert_high_water.sql")).scalar_one()
        rows = connection.execute(
            sql.query("recon/queries/alert_candidates.sql"),
            {"immediate_severities": IMMEDIATE_SEVERITIES, "since": since,
             "max_attempts": alerting.max_attempts, "max_alerts": max_alerts},
        ).mappings().all()
    counts = {"sent": 0, "logged": 0, "failed": 0}
    for row in rows:
        alert = IncidentAlert.from_row(row)
        payload = alert.webhook_payload()
        delivery = alerting.deliver(alert.route.sinks, _LOG_LEVELS[alert.severity], alert.record(), payload, log)
        counts[delivery.status] += 1
        with engine.begin() as connection:
            connection.execute(
                sql.query("recon/queries/alert_record.sql"),
                {"incident_id": alert.incident_id, "occurrence": alert.occurrence, "severity": alert.severity,
                 "route": alert.route.name, "status": delivery.status, "sinks": list(delivery.sinks),
                 "error": delivery.error, "payload": json.dumps(payload, default=str)},
            )
    if len(rows) >= max_alerts:
        next_cursor: datetime | None = rows[-1]["last_seen_at"]
    else:
        next_cursor = high_water
    cursor_out = next_cursor.astimezone(UTC).isoformat() if next_cursor is not None else cursor
    return DispatchOutcome(sent=counts["sent"], logged=counts["logged"], failed=counts["failed"], cursor=cursor_out)


def _root_cause(error: Any) -> str:
    """The innermost error's message: Dagster wraps a step's exception in its own."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(error.message).strip()


def run_failure_alert(context: dg.RunFailureSensorContext) -> RunFailureAlert:
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
    )
