"""Alerts from drift incidents and failed runs under the default routes, against real PostgreSQL.

A local HTTP receiver on 127.0.0.1 stands in for the Slack webhook (Slack cannot
be reached here): it records each POST, so the tests check what a real webhook
would have received. Sensors are evaluated the way the daemon does, through
`build_sensor_context` / `build_run_status_sensor_context` and the sensor's cursor.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.worlds.markets import MarketsWorld, build_markets_world, load_markets_into_ledger, write_markets_to_db
from reconciliation_pipeline.core import run_status
from reconciliation_pipeline.core.alerts import AlertingResource, dispatch_incident_alerts
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.drift_store import IncidentPolicy, RunInfo, persist_domain_run
from reconciliation_pipeline.core.findings import findings_frame, with_domain
from reconciliation_pipeline.core.repairs import empty_plan
from reconciliation_pipeline.core.results import Checked, DomainDiff
from reconciliation_pipeline.defs.alerting.definitions import drift_incident_alert_sensor, run_failure_alert_sensor
from reconciliation_pipeline.resources import PostgresResource
from reconciliation_pipeline_tests.defs.markets.support import (
    MARKETS_ASSETS,
    frequent_resources,
    http_receiver,
    run_frequent,
)
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

SECRET_PATH = "/services/T000/B000/SECRET-TOKEN"


class Lines(logging.Handler):
    """Keeps formatted log lines so tests can read the structured log sink."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


@pytest.fixture
def log() -> logging.Logger:
    logger = logging.getLogger(f"test-alerts-{id(object())}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(Lines())
    return logger


def lines(logger: logging.Logger) -> list[tuple[int, str]]:
    return next(h for h in logger.handlers if isinstance(h, Lines)).lines


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger) -> MarketsWorld:
    world = build_markets_world(30)
    write_markets_to_db(engine, world)
    load_markets_into_ledger(ledger, world)
    return world


def tick(database_url: str, webhook_url: str, cursor: str | None) -> str | None:
    """One evaluation of the incident alert sensor; returns its new cursor."""
    with dg.build_sensor_context(
        cursor=cursor,
        resources={"postgres": PostgresResource(database_url=database_url),
                   "alerting": AlertingResource(webhook_url=webhook_url, timeout_ms=2000)},
    ) as context:
        result = drift_incident_alert_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result.cursor


def incidents(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text("SELECT * FROM recon.drift_incidents"), connection)


def alerts(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text("SELECT * FROM recon.alerts ORDER BY alert_id"), connection)


def listed(payload: dict) -> list[int]:
    """The incident ids a grouped Slack message lists (its footer names them all)."""
    footer = payload["blocks"][-1]["elements"][0]["text"]
    return [int(i) for i in re.search(r"ANY\('\{([\d,]+)\}'\)", footer).group(1).split(",")]


def test_critical_alerts_at_once_the_rest_once_confirmed_in_one_message_per_run_and_route(
    world: MarketsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    with http_receiver() as webhook:
        resources = frequent_resources(database_url, devnet.url)
        first_run = run_frequent(resources, MARKETS_ASSETS)
        cursor = tick(database_url, webhook.url, None)
        first = [json.loads(r.body) for r in webhook.requests]
        open_incidents = incidents(engine)
        critical = open_incidents[open_incidents["severity"] == "CRITICAL"]
        assert set(critical["entity_id"]) == {"market_4", "market_11"}
        (message,) = first  # both CRITICAL incidents of the run in one message
        assert sorted(listed(message)) == sorted(critical["incident_id"])
        assert message["text"] == "[CRITICAL] 2 new drift incidents in markets"
        assert f"run {first_run.run_id}" in message["blocks"][-1]["elements"][0]["text"]

        assert tick(database_url, webhook.url, cursor) is not None
        assert len(webhook.requests) == 1  # nothing new: no second message

        run_frequent(resources, MARKETS_ASSETS)  # the WARN incidents confirm
        cursor = tick(database_url, webhook.url, cursor)
        tick(database_url, webhook.url, cursor)
        run_frequent(resources, MARKETS_ASSETS)
        tick(database_url, webhook.url, cursor)

    every = incidents(engine)
    assert set(every["state"]) == {"confirmed"}
    messages = [json.loads(r.body) for r in webhook.requests]
    assert len(messages) == 2  # CRITICAL at once, then every WARN of the confirming run together
    assert messages[1]["text"].startswith(f"[WARN] {len(every) - 2} new drift incidents in markets")
    sent = Counter(i for m in messages for i in listed(m))
    assert sent == Counter(set(every["incident_id"]))  # one alert per incident, three runs and five ticks
    assert {r.headers["Content-Type"] for r in webhook.requests} == {"application/json"}
    recorded = alerts(engine)
    assert len(recorded) == len(every) and set(recorded["status"]) == {"sent"}
    assert {tuple(s) for s in recorded["sinks"]} == {("log", "webhook")}
    routes = recorded.merge(every[["incident_id", "severity"]], on="incident_id")
    assert set(routes.loc[routes["severity_x"] == "CRITICAL", "route"]) == {"immediate"}
    assert set(routes.loc[routes["severity_x"] == "WARN", "route"]) == {"confirmed"}
    with engine.connect() as connection:
        kept = connection.execute(sa.text(
            "SELECT channel, kind, cardinality(incident_ids), status FROM recon.alert_messages ORDER BY message_id"
        )).all()
    assert kept == [("log", "trigger", 2, "sent"), ("webhook", "trigger", 2, "sent"),
                    ("log", "trigger", len(every) - 2, "sent"), ("webhook", "trigger", len(every) - 2, "sent")]


def test_a_message_is_well_formed_slack_json_listing_each_incident_with_its_runbook_and_origin(
    world: MarketsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    with http_receiver() as webhook:
        run_frequent(frequent_resources(database_url, devnet.url), MARKETS_ASSETS)
        tick(database_url, webhook.url, None)
    (payload,) = [json.loads(r.body) for r in webhook.requests]
    header, section, context = payload["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "[CRITICAL] 2 new drift incidents in markets"}}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    text = section["text"]["text"]
    assert len(text) <= 3000
    market_4 = next(line for line in text.split("\n") if "`market_4`" in line)
    assert "VALUE_MISMATCH on `winning_outcome`: database 0 vs chain 1" in market_4
    with engine.connect() as connection:
        origin, written = connection.execute(sa.text(
            "SELECT details->'origin', details->>'db_written_at' FROM recon.discrepancies "
            "WHERE entity_id = 'market_4' AND field = 'winning_outcome'")).one()
    # The chain value's origin is the devnet transaction that wrote the market's instance entry.
    assert origin["tx_hash"] in {tx.tx_hash for tx in ledger.transactions_in(origin["ledger"])}
    written_in = f"ledger {origin['ledger']} ({origin['closed_at']}) by tx {origin['tx_hash'][:12]}… op 0"
    assert f"; chain written in {written_in}; database row written {written}" in market_4
    assert market_4.endswith("(<RUNBOOKS.md#value_mismatch|runbook>)")
    assert context["type"] == "context"
    assert "recon incidents ack" in context["elements"][0]["text"]


def _persist(engine: sa.Engine, run_id: str, rows: list[tuple[str, Severity]], checked: list[str]) -> None:
    index = pd.RangeIndex(len(rows))
    findings = findings_frame(
        domain="balances",
        entity_type="user",
        entity_id=pd.Series([r[0] for r in rows], index=index, dtype=object),
        entity_key=pd.Series([r[0].split("_")[1] for r in rows], index=index, dtype=object),
        field="usdc_balance",
        drift_class=DriftClass.VALUE_MISMATCH,
        severity=pd.Series([r[1].value for r in rows], index=index, dtype=object),
        db_value="100",
        chain_value="50",
        delta=pd.Series([-50] * len(rows), index=index, dtype=object),
        details=pd.Series([{"wallet_address": "G..."}] * len(rows), index=index, dtype=object),
    )
    persist_domain_run(
        engine, RunInfo(run_id=run_id, job_name="test", partition_key=None), "balances",
        DomainDiff(with_domain(findings, "balances"), Checked.of("user", pd.Series(checked, dtype=object)), 1, None,
                   empty_plan()),
        started_at=datetime.now(UTC), policy=IncidentPolicy(confirm_after_runs=2, grace_minutes=60),
    )


def test_info_is_logged_only_a_reopened_incident_alerts_again_after_its_resolved_notice(
    database_url: str, engine: sa.Engine, log: logging.Logger
) -> None:
    with http_receiver() as webhook:
        alerting = AlertingResource(webhook_url=webhook.url)
        _persist(engine, "r1", [("user_1", Severity.CRITICAL), ("user_2", Severity.INFO)], ["user_1", "user_2"])
        _persist(engine, "r2", [("user_1", Severity.CRITICAL), ("user_2", Severity.INFO)], ["user_1", "user_2"])
        first = dispatch_incident_alerts(engine, alerting, log, None)
        assert (first.messages_sent, first.incidents_alerted, first.messages_failed) == (3, 2, 0)
        assert [json.loads(r.body)["text"] for r in webhook.requests] == ["[CRITICAL] 1 new drift incident in balances"]

        _persist(engine, "r3", [], ["user_1"])  # fixed: the incident resolves
        resolved = dispatch_incident_alerts(engine, alerting, log, first.cursor)
        assert resolved.resolved_notices == 1
        assert json.loads(webhook.requests[-1].body)["text"] == "[RESOLVED] 1 drift incident resolved in balances"
        _persist(engine, "r4", [("user_1", Severity.CRITICAL)], ["user_1"])  # and drifts again
        again = dispatch_incident_alerts(engine, alerting, log, resolved.cursor)
    assert (again.incidents_alerted, again.suppressed) == (1, 0)
    assert len(webhook.requests) == 3
    recorded = alerts(engine)
    assert list(zip(recorded["occurrence"], recorded["kind"], recorded["status"], strict=True)) == [
        (1, "trigger", "sent"), (1, "trigger", "sent"), (1, "resolve", "sent"), (2, "trigger", "sent")]
    records = [json.loads(text) for _, text in lines(log)]
    assert [(r["event"], [(i["entity_id"], i["severity"]) for i in r["incidents"]]) for r in records] == [
        ("drift_alert", [("user_1", "CRITICAL")]), ("drift_alert", [("user_2", "INFO")]),
        ("drift_resolved", [("user_1", "CRITICAL")]), ("drift_alert", [("user_1", "CRITICAL")])]
    assert [level for level, _ in lines(log)] == [logging.ERROR, logging.INFO, logging.INFO, logging.ERROR]
    assert records[0]["incidents"][0]["delta"] == "-50"
    assert records[0]["incidents"][0]["runbook"] == "RUNBOOKS.md#value_mismatch"


def test_a_failing_webhook_is_retried_on_later_ticks_and_its_url_never_logged(
    database_url: str, engine: sa.Engine, log: logging.Logger
) -> None:
    _persist(engine, "r1", [("user_1", Severity.CRITICAL)], ["user_1"])
    with http_receiver(status=500) as webhook:
        alerting = AlertingResource(webhook_url=webhook.url + SECRET_PATH, max_attempts=3)
        failed = dispatch_incident_alerts(engine, alerting, log, None)
        assert (failed.messages_sent, failed.messages_failed) == (1, 1)  # the log took it, the webhook did not
        assert alerts(engine)[["status", "attempts"]].values.tolist() == [["failed", 1]]
        assert alerts(engine)["sinks"].tolist() == [["log"]]
        webhook.status = 200
        retried = dispatch_incident_alerts(engine, alerting, log, failed.cursor)
        assert (retried.messages_sent, retried.incidents_alerted) == (1, 1)  # only to the webhook this time
        assert dispatch_incident_alerts(engine, alerting, log, retried.cursor).messages_sent == 0
    assert [r.path for r in webhook.requests] == [SECRET_PATH, SECRET_PATH]
    recorded = alerts(engine)
    assert recorded[["status", "attempts"]].values.tolist() == [["sent", 2]]
    assert [json.loads(t)["event"] for level, t in lines(log) if level == logging.ERROR] == ["drift_alert"]
    warnings = [text for level, text in lines(log) if level == logging.WARNING]
    assert warnings == ["alert delivery to webhook failed: HTTP 500 from http://127.0.0.1/…"]
    assert all("SECRET" not in text for _, text in lines(log))
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT payload::text, coalesce(error, '') FROM recon.alert_messages")).all()
    assert stored and all("SECRET" not in payload + error for payload, error in stored)


def test_an_unreachable_webhook_gives_up_after_its_attempts(
    database_url: str, engine: sa.Engine, log: logging.Logger
) -> None:
    _persist(engine, "r1", [("user_1", Severity.CRITICAL)], ["user_1"])
    with http_receiver() as closed:
        url = closed.url + SECRET_PATH
    alerting = AlertingResource(webhook_url=url, max_attempts=2, timeout_ms=500)
    cursor = None
    for _ in range(3):
        cursor = dispatch_incident_alerts(engine, alerting, log, cursor).cursor
    assert alerts(engine)[["status", "attempts"]].values.tolist() == [["failed", 2]]
    assert alerts(engine)["error"].tolist() == ["webhook: ConnectionError posting to http://127.0.0.1/…"]


def test_run_failure_sensor_posts_one_alert_for_a_failed_run(database_url: str, engine: sa.Engine) -> None:
    @dg.asset
    def broken() -> None:
        raise RuntimeError("the RPC answered garbage")

    instance = dg.DagsterInstance.ephemeral()
    failed = dg.materialize([broken], instance=instance, raise_on_error=False)
    assert not failed.success
    # What a killed run leaves: its domain's row started and never finished.
    run_status.mark_started(engine, failed.run_id, "streams", "nightly_reconciliation", "2026-11-30")
    with http_receiver() as webhook, dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_event=failed.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=failed.dagster_run,
        resources={"alerting": AlertingResource(webhook_url=webhook.url),
                   "postgres": PostgresResource(database_url=database_url)},
    ) as context:
        run_failure_alert_sensor(context.for_run_failure())
    assert len(webhook.requests) == 1
    payload = json.loads(webhook.requests[0].body)
    assert payload["text"] == f"[CRITICAL] run of __ephemeral_asset_job__ failed ({failed.run_id})"
    assert "the RPC answered garbage" in payload["blocks"][1]["text"]["text"]
    assert "Never finished (marked failed in recon.runs): streams" in payload["blocks"][1]["text"]["text"]
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT channel, kind, run_id FROM recon.alert_messages ORDER BY 1")).all() \
            == [("log", "run_failure", failed.run_id), ("webhook", "run_failure", failed.run_id)]
        status, error = connection.execute(sa.text("SELECT status, error FROM recon.runs WHERE run_id = :r"),
                                           {"r": failed.run_id}).one()
    assert status == "failed" and "the Dagster run failed before this domain finished" in error


@pytest.mark.parametrize("url", ["hooks.slack.com/services/x", "ftp://example.com/hook", "http://"])
def test_an_invalid_webhook_url_fails_at_start_naming_the_variable(url: str) -> None:
    with pytest.raises(dg.DagsterInvariantViolationError, match="ALERT_WEBHOOK_URL") as error:
        with dg.build_resources({"alerting": AlertingResource(webhook_url=url)}):
            pass
    assert url not in str(error.value)
