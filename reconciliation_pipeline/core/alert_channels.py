"""The channels alerts go out on, and what each one is sent.

Each takes a batch (one route's new or resolved incidents of one run) and
answers, per incident, whether it got through. The structured log, Slack and
email send one message per batch; PagerDuty one event per incident, because
the incident is its dedup key (a trigger when it alerts, a resolve when it
resolves, so PagerDuty closes what it opened). Secrets (webhook URLs, routing
keys, passwords) are held here only to be used: no error, log line or stored
payload carries them.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

import requests

from reconciliation_pipeline.core.alert_routes import EmailChannel, PagerDutyChannel
from reconciliation_pipeline.core.drift import Severity
from reconciliation_pipeline.core.json_text import to_json
from reconciliation_pipeline.core.metrics import redact_url

if TYPE_CHECKING:
    from reconciliation_pipeline.core.alerts import IncidentAlert, RunFailureAlert

Logger = logging.Logger | logging.LoggerAdapter

TRIGGER = "trigger"
RESOLVE = "resolve"
MAX_LISTED = 20
"""Incidents a Slack message or mail lists one by one; the rest are counted, with a query."""
_SLACK_TEXT_LIMIT = 2900
_SLACK_HEADER_LIMIT = 150
_PAGERDUTY_SUMMARY_LIMIT = 1024
_SEVERITY_ORDER = {Severity.CRITICAL.value: 0, Severity.WARN.value: 1, Severity.INFO.value: 2}
_LOG_LEVELS = {Severity.CRITICAL.value: logging.ERROR, Severity.WARN.value: logging.WARNING,
               Severity.INFO.value: logging.INFO}
_PAGERDUTY_SEVERITY = {Severity.CRITICAL.value: "critical", Severity.WARN.value: "warning",
                       Severity.INFO.value: "info"}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Batch:
    """One message's worth: a route's incidents of one run that alert (or resolve) now."""

    kind: str
    route: str
    run_id: str | None
    alerts: tuple[IncidentAlert, ...]

    @property
    def worst(self) -> str:
        return min((a.severity for a in self.alerts), key=_SEVERITY_ORDER.__getitem__)

    @property
    def domains(self) -> list[str]:
        return sorted({a.domain for a in self.alerts})

    @property
    def title(self) -> str:
        n = len(self.alerts)
        where = ", ".join(self.domains)
        if self.kind == RESOLVE:
            return f"[RESOLVED] {n} drift incident{'s' if n != 1 else ''} resolved in {where}"
        return f"[{self.worst}] {n} new drift incident{'s' if n != 1 else ''} in {where}"

    @property
    def footer(self) -> str:
        ids = ",".join(str(a.incident_id) for a in self.alerts)
        run = f"run {self.run_id}" if self.run_id else "resolved by hand"
        return (f"Route {self.route}, {run}. SELECT * FROM recon.drift_incidents WHERE incident_id = ANY('{{{ids}}}'); "
                "acknowledge or exempt with: recon incidents ack|exempt <incident_id>")

    def record(self) -> dict[str, Any]:
        """The structured-log form: one record listing every incident."""
        return {"event": "drift_resolved" if self.kind == RESOLVE else "drift_alert", "kind": self.kind,
                "route": self.route, "run_id": self.run_id, "count": len(self.alerts),
                "incidents": [a.record() for a in self.alerts]}


class Sender(Protocol):
    name: str
    channel_type: str

    def send(self, batch: Batch, log: Logger) -> dict[int, str | None]:
        """Deliver a batch; incident id -> None when it got through, else the error (no secret in it)."""
        ...

    def send_run_failure(self, alert: RunFailureAlert, log: Logger) -> str | None:
        ...

    def payload(self, batch: Batch) -> Any:
        """What the batch is sent as, without any secret (stored in recon.alert_messages)."""
        ...


def _all(batch: Batch, error: str | None) -> dict[int, str | None]:
    return {a.incident_id: error for a in batch.alerts}


@dataclass
class LogSender:
    name: str
    channel_type: str = "log"

    def payload(self, batch: Batch) -> dict[str, Any]:
        return batch.record()

    def send(self, batch: Batch, log: Logger) -> dict[int, str | None]:
        level = logging.INFO if batch.kind == RESOLVE else _LOG_LEVELS[batch.worst]
        log.log(level, to_json(batch.record(), sort_keys=True))
        return _all(batch, None)

    def send_run_failure(self, alert: RunFailureAlert, log: Logger) -> str | None:
        log.error(to_json(alert.record(), sort_keys=True))
        return None


def _post(url: str, payload: Mapping[str, Any], timeout_s: float) -> str | None:
    """POST JSON; an error description naming only the URL's host, or None (any 2xx: PagerDuty answers 202)."""
    try:
        response = requests.post(url, json=payload, timeout=timeout_s)
    except requests.RequestException as error:
        return f"{type(error).__name__} posting to {redact_url(url)}"
    if not 200 <= response.status_code < 300:
        return f"HTTP {response.status_code} from {redact_url(url)}"
    return None


def _incident_line(alert: IncidentAlert, markdown: bool) -> str:
    runbook = alert.runbook or ""
    values = "" if alert.db_value is None and alert.chain_value is None else (
        f": database {alert.db_value} vs chain {alert.chain_value}")
    money = (f", {alert.amount_at_stake} base units of {alert.asset_label} at stake"
             if alert.amount_at_stake is not None else "")
    written = "".join([f"; chain written in {alert.origin}" if alert.origin is not None else "",
                       f"; database row written {alert.db_written_at}" if alert.db_written_at is not None else ""])
    if markdown:
        return (f"• *#{alert.incident_id}* [{alert.severity}] {alert.domain} {alert.entity_type} `{alert.entity_id}` "
                f"{alert.drift_class} on `{alert.field}`{values}{money}{written} (<{runbook}|runbook>)")
    return (f"- #{alert.incident_id} [{alert.severity}] {alert.domain} {alert.entity_type} {alert.entity_id} "
            f"{alert.drift_class} on {alert.field}{values}{money}{written}\n  runbook: {runbook}")


@dataclass
class SlackSender:
    name: str
    url: str
    timeout_s: float
    channel_type: str = "slack"

    def payload(self, batch: Batch) -> dict[str, Any]:
        """Slack-compatible JSON: `text` for the notification, `blocks` for the message."""
        listed = batch.alerts[:MAX_LISTED]
        lines = [_incident_line(a, markdown=True) for a in listed]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": clip(batch.title, _SLACK_HEADER_LIMIT)}}]
        section: list[str] = []
        for line in lines:  # sections of at most ~3,000 characters each
            if section and len("\n".join([*section, line])) > _SLACK_TEXT_LIMIT:
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(section)}})
                section = []
            section.append(clip(line, _SLACK_TEXT_LIMIT))
        if section:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(section)}})
        if len(batch.alerts) > MAX_LISTED:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
                f"…and {len(batch.alerts) - MAX_LISTED} more.")}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(batch.footer,
                                                                                      _SLACK_TEXT_LIMIT)}]})
        return {"text": batch.title, "blocks": blocks}

    def send(self, batch: Batch, log: Logger) -> dict[int, str | None]:
        error = _post(self.url, self.payload(batch), self.timeout_s)
        if error is not None:
            log.warning(f"alert delivery to {self.name} failed: {error}")
        return _all(batch, error)

    def send_run_failure(self, alert: RunFailureAlert, log: Logger) -> str | None:
        error = _post(self.url, alert.webhook_payload(), self.timeout_s)
        if error is not None:
            log.warning(f"alert delivery to {self.name} failed: {error}")
        return error


@dataclass
class PagerDutySender:
    """Events API v2: POST {routing_key, event_action, dedup_key, payload} per incident; 202 accepted."""

    name: str
    config: PagerDutyChannel
    routing_key: str
    timeout_s: float
    channel_type: str = "pagerduty"

    @staticmethod
    def dedup_key(incident_id: int) -> str:
        return f"recon-incident-{incident_id}"

    def event(self, kind: str, alert: IncidentAlert) -> dict[str, Any]:
        """One event, without the routing key (added only when sending)."""
        if kind == RESOLVE:
            return {"event_action": "resolve", "dedup_key": self.dedup_key(alert.incident_id)}
        return {
            "event_action": "trigger",
            "dedup_key": self.dedup_key(alert.incident_id),
            "payload": {
                "summary": clip(alert.summary, _PAGERDUTY_SUMMARY_LIMIT),
                "source": f"{self.config.source}/{alert.domain}",
                "severity": _PAGERDUTY_SEVERITY[alert.severity],
                "timestamp": alert.last_seen_at.astimezone(UTC).isoformat(),
                "component": alert.entity_type,
                "group": alert.domain,
                "class": alert.drift_class,
                "custom_details": alert.record(),
            },
            "links": [{"href": alert.runbook, "text": f"Runbook: {alert.drift_class}"}] if alert.runbook else [],
        }

    def payload(self, batch: Batch) -> list[dict[str, Any]]:
        return [self.event(batch.kind, a) for a in batch.alerts]

    def _send(self, event: Mapping[str, Any]) -> str | None:
        return _post(self.config.url, {"routing_key": self.routing_key, **event}, self.timeout_s)

    def send(self, batch: Batch, log: Logger) -> dict[int, str | None]:
        results: dict[int, str | None] = {}
        for alert in batch.alerts:
            results[alert.incident_id] = self._send(self.event(batch.kind, alert))
        failed = [i for i, e in results.items() if e is not None]
        if failed:
            log.warning(f"alert delivery to {self.name} failed for incidents {failed}: {results[failed[0]]}")
        return results

    def send_run_failure(self, alert: RunFailureAlert, log: Logger) -> str | None:
        error = self._send({
            "event_action": "trigger",
            "dedup_key": f"recon-run-{alert.run_id}",
            "payload": {"summary": clip(alert.webhook_payload()["text"], _PAGERDUTY_SUMMARY_LIMIT),
                        "source": f"{self.config.source}/{alert.job_name}", "severity": "critical",
                        "custom_details": alert.record()},
        })
        if error is not None:
            log.warning(f"alert delivery to {self.name} failed: {error}")
        return error


@dataclass
class EmailSender:
    name: str
    config: EmailChannel
    password: str | None
    timeout_s: float
    channel_type: str = "email"

    def message(self, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.config.sender
        message["To"] = ", ".join(self.config.recipients)
        message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        message.set_content(body)
        return message

    def payload(self, batch: Batch) -> dict[str, Any]:
        lines = [_incident_line(a, markdown=False) for a in batch.alerts]
        return {"subject": batch.title, "to": list(self.config.recipients),
                "body": "\n".join([batch.title, "", *lines, "", batch.footer])}

    def _deliver(self, message: EmailMessage) -> str | None:
        config = self.config
        try:
            if config.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(config.host, config.port, timeout=self.timeout_s,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=self.timeout_s)
            with smtp:
                if config.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if config.username is not None and self.password is not None:
                    smtp.login(config.username, self.password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            # The exception's text can quote the server's reply, never our password: name the type and code.
            code = getattr(error, "smtp_code", None)
            return f"{type(error).__name__}{f' {code}' if code else ''} sending mail via {config.host}:{config.port}"
        return None

    def send(self, batch: Batch, log: Logger) -> dict[int, str | None]:
        payload = self.payload(batch)
        error = self._deliver(self.message(payload["subject"], payload["body"]))
        if error is not None:
            log.warning(f"alert delivery to {self.name} failed: {error}")
        return _all(batch, error)

    def send_run_failure(self, alert: RunFailureAlert, log: Logger) -> str | None:
        text = alert.webhook_payload()["text"]
        error = self._deliver(self.message(text, "\n".join([text, alert.message, *alert.step_errors])))
        if error is not None:
            log.warning(f"alert delivery to {self.name} failed: {error}")
        return error
