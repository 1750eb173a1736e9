"""Alert routing: one validated configuration file (`ALERT_ROUTES_FILE`, YAML).

It names channels (the structured log, Slack-compatible webhooks, PagerDuty
Events API v2 services, SMTP mailboxes) and routes: an incident goes to the
first route whose domains and severities match it, which says when it alerts
(`immediately`, or `once_confirmed`), its suppression interval and its
channels. Runbook links per drift class come along in every message. The file
never holds a secret: a channel names the environment variable that holds its
webhook URL, routing key or password, read when the alert sensor starts.

Without a file, the default routes keep the behaviour the pipeline had:
CRITICAL at once, WARN once confirmed, both to the log and to the webhook of
`ALERT_WEBHOOK_URL` when it is set, INFO once confirmed to the log only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reconciliation_pipeline.core.drift import DriftClass, Severity

ROUTES_FILE_VARIABLE = "ALERT_ROUTES_FILE"
WEBHOOK_VARIABLE = "ALERT_WEBHOOK_URL"
PAGERDUTY_VARIABLE = "PAGERDUTY_ROUTING_KEY"
SMTP_PASSWORD_VARIABLE = "SMTP_PASSWORD"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
IMMEDIATELY = "immediately"
ONCE_CONFIRMED = "once_confirmed"
DEFAULT_RUNBOOK = "RUNBOOKS.md"
"""Where the default runbook links point (a section per drift class) when the file names no base URL."""

_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class AlertConfigError(ValueError):
    """The routes file is missing, unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogChannel(_Strict):
    """The structured log (the sensor's log: Dagster's event log and the daemon's output)."""

    type: Literal["log"]


class SlackChannel(_Strict):
    """A Slack-compatible incoming webhook. Its URL authorises posting: only its variable is named."""

    type: Literal["slack"]
    url_env: str = Field(default=WEBHOOK_VARIABLE, pattern=_ENV_NAME)


class PagerDutyChannel(_Strict):
    """A PagerDuty service (Events API v2): trigger when an incident alerts, resolve when it resolves,
    the incident as dedup key. `url` is the public events endpoint, not a secret."""

    type: Literal["pagerduty"]
    routing_key_env: str = Field(default=PAGERDUTY_VARIABLE, pattern=_ENV_NAME)
    url: str = PAGERDUTY_EVENTS_URL
    source: str = "reconciliation_pipeline"

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return url


class EmailChannel(_Strict):
    """Mail over SMTP: one message per grouped alert to every recipient."""

    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=_ENV_NAME)
    sender: str
    recipients: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _credentials_together(self) -> EmailChannel:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give both username and password_env, or neither")
        return self


Channel = Annotated[LogChannel | SlackChannel | PagerDutyChannel | EmailChannel, Field(discriminator="type")]


class RouteConfig(_Strict):
    name: str = Field(pattern=_NAME)
    domains: tuple[str, ...] = ()
    """Empty: every domain."""
    severities: tuple[Severity, ...] = ()
    """Empty: every severity."""
    notify: Literal["immediately", "once_confirmed"] = ONCE_CONFIRMED
    suppress_minutes: int | None = Field(default=None, ge=0)
    """An incident that alerted on this route within this many minutes does not alert again when it
    reopens (a flapping entry); None: the file's default."""
    channels: tuple[str, ...] = Field(min_length=1)

    def matches(self, domain: str, severity: str) -> bool:
        return (not self.domains or domain in self.domains) and (
            not self.severities or severity in {s.value for s in self.severities})


class RoutesConfig(_Strict):
    channels: dict[Annotated[str, Field(pattern=_NAME)], Channel]
    routes: tuple[RouteConfig, ...] = Field(min_length=1)
    suppress_minutes: int = Field(default=0, ge=0)
    runbook_base_url: str | None = None
    """Each drift class links to `<base>#<drift_class in lower case>` unless `runbooks` names its own."""
    runbooks: dict[DriftClass, str] = Field(default_factory=dict)
    run_failures: tuple[str, ...] = ("log",)
    """Channels a failed run alerts on."""

    @model_validator(mode="before")
    @classmethod
    def _log_always(cls, data: object) -> object:
        """The structured log is always a channel, named `log`, whether the file lists it or not."""
        if isinstance(data, Mapping) and isinstance(data.get("channels"), Mapping) and "log" not in data["channels"]:
            return {**data, "channels": {"log": {"type": "log"}, **data["channels"]}}
        return data

    @model_validator(mode="after")
    def _references(self) -> RoutesConfig:
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"route names must be distinct, got {names}")
        for where, channels in [*((f"route {r.name}", r.channels) for r in self.routes),
                                ("run_failures", self.run_failures)]:
            unknown = [c for c in channels if c not in self.channels]
            if unknown:
                raise ValueError(f"{where} names unknown channels {unknown}; known: {sorted(self.channels)}")
        return self

    def route_for(self, domain: str, severity: str) -> RouteConfig | None:
        """The first route matching the incident; None: no route takes it (it alerts nowhere)."""
        return next((r for r in self.routes if r.matches(domain, severity)), None)

    def route(self, name: str) -> RouteConfig | None:
        return next((r for r in self.routes if r.name == name), None)

    def suppression_minutes(self, route: RouteConfig) -> int:
        return self.suppress_minutes if route.suppress_minutes is None else route.suppress_minutes

    def runbook(self, drift_class: str) -> str:
        try:
            own = self.runbooks.get(DriftClass(drift_class))
        except ValueError:
            own = None
        if own is not None:
            return own
        return f"{self.runbook_base_url or DEFAULT_RUNBOOK}#{drift_class.lower()}"

    def secret_variables(self) -> dict[str, str]:
        """channel name -> the environment variable holding its secret (only channels that have one)."""
        found: dict[str, str] = {}
        for name, channel in self.channels.items():
            variable = (channel.url_env if isinstance(channel, SlackChannel)
                        else channel.routing_key_env if isinstance(channel, PagerDutyChannel)
                        else channel.password_env if isinstance(channel, EmailChannel) else None)
            if variable is not None:
                found[name] = variable
        return found


def default_routes(webhook: bool) -> RoutesConfig:
    """The routes without a file: CRITICAL at once, WARN once confirmed (log and, when set, the
    ALERT_WEBHOOK_URL webhook), INFO once confirmed to the log only."""
    loud = ("log", "webhook") if webhook else ("log",)
    channels: dict[str, LogChannel | SlackChannel] = {"log": LogChannel(type="log")}
    if webhook:
        channels["webhook"] = SlackChannel(type="slack", url_env=WEBHOOK_VARIABLE)
    return RoutesConfig(
        channels=channels,
        routes=(
            RouteConfig(name="immediate", severities=(Severity.CRITICAL,), notify=IMMEDIATELY, channels=loud),
            RouteConfig(name="confirmed", severities=(Severity.WARN,), channels=loud),
            RouteConfig(name="confirmed-info", severities=(Severity.INFO,), channels=("log",)),
        ),
        run_failures=loud,
    )


def parse_routes(data: object, source: str) -> RoutesConfig:
    """A routes configuration from parsed YAML; `source` names it in errors."""
    if not isinstance(data, Mapping):
        raise AlertConfigError(f"{source}: the alert routes file must be a mapping with channels and routes")
    try:
        return RoutesConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in error.errors())
        raise AlertConfigError(f"{source}: invalid alert routes: {problems}") from None


def load_routes(path: str) -> RoutesConfig:
    """Read and validate the routes file."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as error:
        raise AlertConfigError(f"{ROUTES_FILE_VARIABLE} names {path!r}, which cannot be read: "
                               f"{error.strerror or type(error).__name__}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise AlertConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_routes(data, path)
