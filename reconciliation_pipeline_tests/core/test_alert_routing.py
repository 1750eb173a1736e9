"""Alert routing from the routes file, to real local receivers.

Slack and PagerDuty cannot be reached from here: a local HTTP server
(`http_receiver`) stands in for both and records what they would have been
sent. Mail goes over SMTP to a real local server (aiosmtpd) that requires a
login. The pipeline runs from the environment, the way a deployment runs it,
with the secrets (webhook URL, routing key, SMTP password) in environment
variables only, and the tests look for them everywhere they must not be.
"""

from __future__ import annotations

import email
import json
import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from reconciliation_pipeline.core.alert_routes import AlertConfigError, default_routes, load_routes, parse_routes
from reconciliation_pipeline.core.alerts import AlertingResource, dispatch_incident_alerts
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.defs.alerting.definitions import drift_incident_alert_sensor
from reconciliation_pipeline.resources import build_resources
from reconciliation_pipeline_tests.core.test_alerts import _persist, alerts
from reconciliation_pipeline_tests.defs.markets.support import http_receiver
from reconciliation_pipeline_tests.demo_runs import (
    pipeline_environment,
    run_demo_jobs,
    run_frequent_job,
    seed_demo_world,
)
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

WEBHOOK_SECRET = "/services/T0AAA/B0BBB/webhook-secret-9f2c41"
ROUTING_KEY = "pd-routing-key-secret-5e81aa07c3"
SMTP_LOGIN = "recon"
SMTP_SECRET = "smtp-password-secret-71d0"
SECRETS = (WEBHOOK_SECRET.rsplit("/", 1)[-1], ROUTING_KEY, SMTP_SECRET)


@dataclass
class Inbox:
    """What the local SMTP server received, and the logins it was offered."""

    messages: list[email.message.Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 - aiosmtpd
        self.messages.append(email.message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))  # type: ignore[attr-defined]
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_receiver() -> Iterator[Inbox]:
    """A real SMTP server on 127.0.0.1 that accepts mail only after a login with the test's password."""
    inbox = Inbox(port=_free_port())

    def authenticate(server: object, session: object, envelope: object, mechanism: str, data: object) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == SMTP_LOGIN.encode() and \
            data.password == SMTP_SECRET.encode()
        inbox.logins.append((mechanism, ok))
        return AuthResult(success=ok)

    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, authenticator=authenticate,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def routes_file(tmp_path: Path, pagerduty_url: str, smtp_port: int, **top: object) -> Path:
    config = {
        "suppress_minutes": 0,
        "runbook_base_url": "https://runbooks.example/recon",
        "runbooks": {"VALUE_MISMATCH": "https://runbooks.example/recon/value-mismatch"},
        "channels": {
            "log": {"type": "log"},
            "oncall": {"type": "slack", "url_env": "ONCALL_SLACK_WEBHOOK_URL"},
            "pager": {"type": "pagerduty", "url": pagerduty_url},
            "finance": {"type": "email", "host": "127.0.0.1", "port": smtp_port, "security": "none",
                        "username": SMTP_LOGIN, "password_env": "SMTP_PASSWORD", "sender": "recon@example.com",
                        "recipients": ["finance-oncall@example.com", "ledger@example.com"]},
        },
        "routes": [
            {"name": "page", "severities": ["CRITICAL"], "notify": "immediately",
             "channels": ["log", "oncall", "pager"]},
            {"name": "money", "domains": ["streams", "lending"], "notify": "immediately",
             "channels": ["log", "oncall", "finance"]},
            {"name": "rest", "notify": "immediately", "channels": ["log", "oncall"]},
        ],
        "run_failures": ["log", "oncall"],
        **top,
    }
    path = tmp_path / "alert_routes.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sensor_tick(instance: dg.DagsterInstance, cursor: str | None) -> str | None:
    """The alert sensor as the daemon evaluates it, with the resources bound from the environment."""
    resources = build_resources()
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={
            "postgres": resources["postgres"], "alerting": resources["alerting"]}) as context:
        result = drift_incident_alert_sensor(context)
    return result.cursor


def listed(payload: dict) -> list[int]:
    footer = payload["blocks"][-1]["elements"][0]["text"]
    return [int(i) for i in re.search(r"ANY\('\{([\d,]+)\}'\)", footer).group(1).split(",")]


# The local SMTP server takes a login without TLS on purpose (it is on 127.0.0.1); aiosmtpd warns about it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_first_run_sends_one_message_per_run_and_route_pages_and_mails_and_leaks_no_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, engine: sa.Engine, ledger: DevnetLedger,
    devnet: DevnetServer, reference_time: datetime, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    world = seed_demo_world(engine, ledger, reference_time)
    instance = dg.DagsterInstance.ephemeral()
    with http_receiver() as slack, http_receiver(status=202) as pagerduty, smtp_receiver() as inbox:
        pipeline_environment(
            monkeypatch, database_url, devnet.url,
            ALERT_ROUTES_FILE=str(routes_file(tmp_path, pagerduty.url + "/v2/enqueue", inbox.port)),
            ONCALL_SLACK_WEBHOOK_URL=slack.url + WEBHOOK_SECRET, PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
            SMTP_PASSWORD=SMTP_SECRET,
        )
        runs = run_demo_jobs(instance, reference_time)
        cursor = sensor_tick(instance, None)

        with engine.connect() as connection:
            incidents = pd.read_sql(sa.text("SELECT * FROM recon.drift_incidents"), connection)
            routed = pd.read_sql(sa.text("SELECT incident_id, route, run_id FROM recon.alerts"), connection)
        assert len(incidents) == len(world.expected_findings()) == 67
        assert len(routed) == 67  # every new incident alerted ...
        messages = [json.loads(r.body) for r in slack.requests]
        groups = routed.groupby(["route", "run_id"])["incident_id"].apply(sorted).to_dict()
        assert len(messages) == len(groups) < 10  # ... in one message per run and route, not 67
        assert sorted(sorted(listed(m)) for m in messages) == sorted(groups.values())
        assert {r.path for r in slack.requests} == {WEBHOOK_SECRET}
        critical = incidents[incidents["severity"] == "CRITICAL"]
        assert set(routed.loc[routed["incident_id"].isin(critical["incident_id"]), "route"]) == {"page"}
        money = incidents[incidents["domain"].isin(["streams", "lending"]) & (incidents["severity"] != "CRITICAL")]
        assert set(routed.loc[routed["incident_id"].isin(money["incident_id"]), "route"]) == {"money"}
        assert set(routed["run_id"]) == set(runs.run_ids)

        # PagerDuty: one trigger per CRITICAL incident, the incident as dedup key.
        triggers = [json.loads(r.body) for r in pagerduty.requests]
        assert sorted(t["dedup_key"] for t in triggers) == sorted(
            f"recon-incident-{i}" for i in critical["incident_id"])
        assert {t["event_action"] for t in triggers} == {"trigger"} and {t["routing_key"] for t in triggers} == {
            ROUTING_KEY}
        market_4 = incidents[incidents["entity_id"] == "market_4"].iloc[0]
        page = next(t for t in triggers if t["dedup_key"] == f"recon-incident-{market_4['incident_id']}")
        assert page["payload"]["severity"] == "critical" and page["payload"]["group"] == "markets"
        assert page["payload"]["source"] == "reconciliation_pipeline/markets"
        assert page["links"] == [{"href": "https://runbooks.example/recon/value-mismatch",
                                  "text": "Runbook: VALUE_MISMATCH"}]

        # One mail: the money route's incidents of the nightly run, after a login.
        (mail,) = inbox.messages
        assert inbox.logins == [("LOGIN", True)] or inbox.logins == [("PLAIN", True)]
        assert inbox.envelopes == [("recon@example.com", ["finance-oncall@example.com", "ledger@example.com"])]
        assert mail["Subject"] == f"[WARN] {len(money)} new drift incidents in lending, streams"
        body = mail.get_payload()
        assert all(f"#{i} " in body for i in money["incident_id"])
        assert "runbook: https://runbooks.example/recon#invalid_address" in body

        # The app fixes market_4's outcome; the next run resolves it and PagerDuty is told.
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE markets SET winning_outcome = 1, updated_at = now() WHERE id = 4"))
        run_frequent_job(instance)
        sensor_tick(instance, cursor)
    resolves = [json.loads(r.body) for r in pagerduty.requests[len(triggers):]]
    assert resolves == [{"routing_key": ROUTING_KEY, "event_action": "resolve",
                         "dedup_key": f"recon-incident-{market_4['incident_id']}"}]
    assert json.loads(slack.requests[-1].body)["text"] == "[RESOLVED] 1 drift incident resolved in markets"
    assert len(inbox.messages) == 1

    # No secret in the logs, the metadata, the event log or what recon stored.
    seen = [caplog.text, capsys.readouterr().out, capsys.readouterr().err]
    for run_id in [*runs.run_ids]:
        seen += [repr(entry) for entry in instance.all_logs(run_id)]
    for result in (runs.nightly, runs.frequent):
        seen += [repr(event) for event in result.all_events]
    with engine.connect() as connection:
        seen += [str(v) for row in connection.execute(sa.text(
            "SELECT payload::text, coalesce(error, '') FROM recon.alert_messages UNION ALL "
            "SELECT payload::text, coalesce(error, '') FROM recon.alerts")).all() for v in row]
    text = "\n".join(seen)
    assert "drift_alert" in text  # the structured log was captured
    assert [s for s in SECRETS if s in text] == []


def test_an_incident_reopening_within_the_suppression_interval_does_not_alert_again(
    tmp_path: Path, database_url: str, engine: sa.Engine
) -> None:
    log = logging.getLogger("test-suppression")
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump({
        "suppress_minutes": 60,
        "channels": {"log": {"type": "log"}, "hook": {"type": "slack"}},
        "routes": [{"name": "all", "notify": "immediately", "channels": ["log", "hook"]},
                   {"name": "unused", "channels": ["log"]}],
    }))
    with http_receiver() as webhook:
        alerting = AlertingResource(routes_file=str(path), webhook_url=webhook.url)
        _persist(engine, "r1", [("user_1", Severity.WARN)], ["user_1"])
        cursor = dispatch_incident_alerts(engine, alerting, log, None).cursor
        _persist(engine, "r2", [], ["user_1"])  # resolves: the resolved notice goes out
        cursor = dispatch_incident_alerts(engine, alerting, log, cursor).cursor
        _persist(engine, "r3", [("user_1", Severity.WARN)], ["user_1"])  # flaps back within the hour
        flapped = dispatch_incident_alerts(engine, alerting, log, cursor)
        assert (flapped.suppressed, flapped.messages_sent) == (1, 0)
        later = datetime.now(UTC).replace(microsecond=0) + pd.Timedelta(minutes=61)
        _persist(engine, "r4", [], ["user_1"])
        _persist(engine, "r5", [("user_1", Severity.WARN)], ["user_1"])
        after_the_hour = dispatch_incident_alerts(engine, alerting, log, flapped.cursor, now=later)
    assert after_the_hour.incidents_alerted == 1
    assert [json.loads(r.body)["text"] for r in webhook.requests] == [
        "[WARN] 1 new drift incident in balances", "[RESOLVED] 1 drift incident resolved in balances",
        "[WARN] 1 new drift incident in balances"]
    assert alerts(engine)[["occurrence", "kind", "status"]].values.tolist() == [
        [1, "trigger", "sent"], [1, "resolve", "sent"], [2, "trigger", "suppressed"], [3, "trigger", "sent"]]


def test_routes_go_to_the_first_match_and_runbooks_per_class() -> None:
    routes = parse_routes({
        "runbook_base_url": "https://wiki.example/recon",
        "runbooks": {"MISSING_IN_DB": "https://wiki.example/missing"},
        "channels": {"log": {"type": "log"}},
        "routes": [{"name": "critical-markets", "domains": ["markets"], "severities": ["CRITICAL"],
                    "notify": "immediately", "channels": ["log"]},
                   {"name": "markets", "domains": ["markets"], "channels": ["log"]},
                   {"name": "money", "domains": ["streams", "balances"], "severities": ["WARN", "CRITICAL"],
                    "channels": ["log"]}],
    }, "test")
    assert routes.route_for("markets", "CRITICAL").name == "critical-markets"
    assert routes.route_for("markets", "INFO").name == "markets"
    assert routes.route_for("balances", "CRITICAL").name == "money"
    assert routes.route_for("balances", "INFO") is None  # no route takes it: it alerts nowhere
    assert routes.runbook("MISSING_IN_DB") == "https://wiki.example/missing"
    assert routes.runbook("VALUE_MISMATCH") == "https://wiki.example/recon#value_mismatch"


def test_every_drift_class_has_the_runbook_section_its_default_link_points_at() -> None:
    runbooks = (Path(__file__).parents[2] / "RUNBOOKS.md").read_text()
    anchors = {line[3:].strip().lower() for line in runbooks.splitlines() if line.startswith("## ")}
    assert {default_routes(webhook=False).runbook(c.value).split("#")[1] for c in DriftClass} <= anchors


@pytest.mark.parametrize(("config", "message"), [
    ({"channels": {"log": {"type": "log"}}, "routes": [{"name": "a", "channels": ["log", "pager"]}]},
     "route a names unknown channels ['pager']"),
    ({"channels": {"hook": {"type": "slack", "url": "https://hooks.slack.com/services/T/B/leaked"}},
      "routes": [{"name": "a", "channels": ["hook"]}]},
     "channels.hook.slack.url: Extra inputs are not permitted"),
    ({"channels": {"log": {"type": "log"}}, "routes": [{"name": "a", "severities": ["URGENT"], "channels": ["log"]}]},
     "routes.0.severities.0: Input should be 'INFO', 'WARN' or 'CRITICAL'"),
    ({"channels": {"log": {"type": "log"}}, "routes": [{"name": "a", "notify": "sometimes", "channels": ["log"]}]},
     "routes.0.notify"),
    ({"channels": {"mail": {"type": "email", "host": "smtp", "sender": "a@b", "recipients": ["c@d"],
                            "username": "u"}}, "routes": [{"name": "a", "channels": ["mail"]}]},
     "give both username and password_env, or neither"),
    ({"channels": {"log": {"type": "log"}}, "routes": []}, "routes: Tuple should have at least 1 item"),
])
def test_an_invalid_routes_file_is_refused_naming_what_is_wrong(tmp_path: Path, config: dict, message: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(AlertConfigError) as error:
        load_routes(str(path))
    assert message in str(error.value) and str(path) in str(error.value)
    assert "leaked" not in str(error.value)  # a secret pasted into the file is not echoed back


def test_a_channel_whose_secret_variable_is_unset_fails_at_start_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FINANCE_WEBHOOK_URL", raising=False)
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump({"channels": {"hook": {"type": "slack", "url_env": "FINANCE_WEBHOOK_URL"}},
                                    "routes": [{"name": "a", "channels": ["hook"]}]}))
    with pytest.raises(dg.DagsterInvariantViolationError, match="FINANCE_WEBHOOK_URL, which is empty or unset"):
        with dg.build_resources({"alerting": AlertingResource(routes_file=str(path))}):
            pass
    missing = tmp_path / "absent.yaml"
    with pytest.raises(dg.DagsterInvariantViolationError, match="ALERT_ROUTES_FILE.*cannot be read"):
        with dg.build_resources({"alerting": AlertingResource(routes_file=str(missing))}):
            pass


def test_the_example_routes_file_validates() -> None:
    from reconciliation_pipeline.localenv import PROJECT_ROOT

    routes = load_routes(str(PROJECT_ROOT / "deploy" / "alert_routes.example.yaml"))
    assert [r.name for r in routes.routes] == ["page", "markets", "money", "everything-else"]
    assert routes.secret_variables() == {"oncall-slack": "ALERT_WEBHOOK_URL", "markets-slack": "MARKETS_SLACK_WEBHOOK_URL",
                                         "pagerduty": "PAGERDUTY_ROUTING_KEY", "finance-mail": "SMTP_PASSWORD"}
    assert routes.route_for("markets", "CRITICAL").name == "page"
