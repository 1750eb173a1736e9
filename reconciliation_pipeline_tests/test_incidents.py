"""The on-call workflow against real PostgreSQL: acknowledgements, exemptions, manual
resolutions, the audit trail, and `recon incidents` with its errors.

Alerts go to a local HTTP receiver standing in for the Slack webhook, through
the same dispatch the sensor runs.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from reconciliation_pipeline import cli, incidents
from reconciliation_pipeline.core.alerts import AlertingResource, dispatch_incident_alerts
from reconciliation_pipeline.core.drift import Severity
from reconciliation_pipeline_tests.core.test_alerts import _persist, alerts
from reconciliation_pipeline_tests.defs.markets.support import http_receiver

LOG = logging.getLogger("test-incidents")


def incident_of(engine: sa.Engine, entity_id: str) -> dict:
    with engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT * FROM recon.drift_incidents WHERE entity_id = :e"),
                                       {"e": entity_id}).mappings().one())


def events_of(engine: sa.Engine, incident_id: int) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(sa.text(
            "SELECT event, occurrence, actor, reason, run_id FROM recon.incident_events WHERE incident_id = :i "
            "ORDER BY event_id"), {"i": incident_id}).all()]


def sent_texts(webhook) -> list[str]:  # noqa: ANN001 - the receiver
    return [json.loads(r.body)["text"] for r in webhook.requests]


def test_an_acknowledged_incident_sends_nothing_until_its_expiry_then_alerts(engine: sa.Engine) -> None:
    _persist(engine, "r1", [("user_1", Severity.CRITICAL)], ["user_1"])
    incident = incident_of(engine, "user_1")
    until = datetime.now(UTC) + timedelta(hours=2)
    acked = incidents.acknowledge(engine, incident["incident_id"], until=until, actor="alice",
                                  reason="the fix ships tonight")
    assert (acked["acknowledged_by"], acked["acknowledged_until"]) == ("alice", until)
    with http_receiver() as webhook:
        alerting = AlertingResource(webhook_url=webhook.url)
        held = dispatch_incident_alerts(engine, alerting, LOG, None)
        _persist(engine, "r2", [("user_1", Severity.CRITICAL)], ["user_1"])  # still tracked: it confirms
        held = dispatch_incident_alerts(engine, alerting, LOG, held.cursor)
        assert webhook.requests == [] and held.incidents_alerted == 0
        assert incident_of(engine, "user_1")["state"] == "confirmed"
        expired = dispatch_incident_alerts(engine, alerting, LOG, held.cursor, now=until + timedelta(seconds=1))
    assert expired.incidents_alerted == 1
    assert sent_texts(webhook) == ["[CRITICAL] 1 new drift incident in balances"]
    assert events_of(engine, incident["incident_id"]) == [
        ("opened", 1, "pipeline", None, "r1"), ("acknowledged", 1, "alice", "the fix ships tonight", None),
        ("confirmed", 1, "pipeline", None, "r2")]
    with pytest.raises(incidents.ExpiredRule, match="is not in the future"):
        incidents.acknowledge(engine, incident["incident_id"], until=datetime.now(UTC) - timedelta(minutes=1),
                              actor="alice", reason="too late")
    with pytest.raises(incidents.UnknownIncident, match="no incident 424242"):
        incidents.acknowledge(engine, 424242, until=until, actor="alice", reason="x")


def test_an_exempt_finding_is_recorded_as_exempt_alerts_nowhere_and_is_not_open_drift(engine: sa.Engine) -> None:
    _persist(engine, "r1", [("user_1", Severity.CRITICAL), ("user_22", Severity.CRITICAL)], ["user_1", "user_22"])
    expires = datetime.now(UTC) + timedelta(days=7)
    wrong_way = incidents.ExemptionRule(domain="balances", entity_pattern="user_*", field="usdc_balance",
                                        drift_class="VALUE_MISMATCH", direction="chain_above_db", max_abs_delta=None,
                                        owner="payments", reason="chain ahead: settlement lag", expires_at=expires)
    assert incidents.create_exemption(engine, wrong_way, actor="carol")[1] == []  # delta is -50: not above
    rule = incidents.ExemptionRule(domain="balances", entity_pattern="user_?", field="usdc_balance",
                                   drift_class="VALUE_MISMATCH", direction="chain_below_db", max_abs_delta=100,
                                   owner="payments", reason="known test wallet", expires_at=expires)
    rule_id, exempted = incidents.create_exemption(engine, rule, actor="carol")
    one = incident_of(engine, "user_1")
    assert exempted == [one["incident_id"]]  # user_? matches user_1, not user_22

    with http_receiver() as webhook:
        alerting = AlertingResource(webhook_url=webhook.url)
        _persist(engine, "r2", [("user_1", Severity.CRITICAL), ("user_22", Severity.CRITICAL)], ["user_1", "user_22"])
        dispatch_incident_alerts(engine, alerting, LOG, None)
    assert sent_texts(webhook) == ["[CRITICAL] 1 new drift incident in balances"]
    assert set(alerts(engine)["incident_id"]) == {incident_of(engine, "user_22")["incident_id"]}
    with engine.connect() as connection:
        findings = dict(connection.execute(sa.text(
            "SELECT entity_id, exempt_rule_id FROM recon.discrepancies WHERE run_id = 'r2'")).tuples().all())
        open_ids = set(connection.execute(sa.text("SELECT entity_id FROM recon.open_incidents")).scalars())
        open_counts = connection.execute(sa.text(
            "SELECT sum(open_incidents + confirmed_incidents) FROM recon.open_drift_by_domain")).scalar_one()
        status = connection.execute(sa.text(
            "SELECT status, exempt_incidents FROM recon.exemption_status WHERE rule_id = :r"), {"r": rule_id}).one()
    assert findings == {"user_1": rule_id, "user_22": None}  # still recorded, marked exempt
    assert open_ids == {"user_22"} and open_counts == 1
    assert tuple(status) == ("active", 1)
    assert ("exempted", 1, "carol", "known test wallet", None) in events_of(engine, one["incident_id"])

    # Revoked, the next run sees the drift as drift again, and it alerts.
    assert incidents.revoke_exemption(engine, rule_id, actor="carol", reason="wallet retired") == [one["incident_id"]]
    with pytest.raises(incidents.ExpiredRule, match="already revoked"):
        incidents.revoke_exemption(engine, rule_id, actor="carol", reason="again")
    with http_receiver() as webhook:
        _persist(engine, "r3", [("user_1", Severity.CRITICAL), ("user_22", Severity.CRITICAL)], ["user_1", "user_22"])
        dispatch_incident_alerts(engine, AlertingResource(webhook_url=webhook.url), LOG, None)
    assert sent_texts(webhook) == ["[CRITICAL] 1 new drift incident in balances"]
    assert incident_of(engine, "user_1")["exempt_rule_id"] is None


def test_an_exemption_lapses_at_its_expiry(engine: sa.Engine) -> None:
    _persist(engine, "r1", [("user_1", Severity.WARN)], ["user_1"])
    rule = incidents.ExemptionRule(domain="balances", entity_pattern="user_1", field=None, drift_class=None,
                                   direction=None, max_abs_delta=None, owner="payments", reason="two seconds",
                                   expires_at=datetime.now(UTC) + timedelta(seconds=2))
    rule_id, exempted = incidents.create_exemption(engine, rule, actor="dan")
    assert exempted == [incident_of(engine, "user_1")["incident_id"]]
    time.sleep(2.2)
    _persist(engine, "r2", [("user_1", Severity.WARN)], ["user_1"])
    with engine.connect() as connection:
        marked = connection.execute(sa.text("SELECT exempt_rule_id FROM recon.discrepancies WHERE run_id = 'r2'")
                                    ).scalar_one()
    assert marked is None and incident_of(engine, "user_1")["exempt_rule_id"] is None
    with pytest.raises(incidents.ExpiredRule, match=f"exemption rule {rule_id} expired at"):
        incidents.revoke_exemption(engine, rule_id, actor="dan", reason="late")
    with pytest.raises(incidents.ExpiredRule, match="is not in the future"):
        incidents.create_exemption(engine, incidents.ExemptionRule(
            domain="balances", entity_pattern="*", field=None, drift_class=None, direction=None, max_abs_delta=None,
            owner="payments", reason="already over", expires_at=datetime.now(UTC) - timedelta(days=1)), actor="dan")
    with pytest.raises(incidents.InvalidAction, match="unknown domain 'balance'"):
        incidents.create_exemption(engine, incidents.ExemptionRule(
            domain="balance", entity_pattern="*", field=None, drift_class=None, direction=None, max_abs_delta=None,
            owner="payments", reason="typo", expires_at=datetime.now(UTC) + timedelta(days=1)), actor="dan")
    with pytest.raises(incidents.InvalidAction, match="unknown drift class"):
        incidents.ExemptionRule(domain="balances", entity_pattern="*", field=None, drift_class="MISMATCH",
                                direction=None, max_abs_delta=None, owner="o", reason="r",
                                expires_at=datetime.now(UTC))


def test_a_manual_resolution_is_audited_and_a_returning_drift_reopens_it(engine: sa.Engine) -> None:
    with http_receiver() as webhook:
        alerting = AlertingResource(webhook_url=webhook.url)
        _persist(engine, "r1", [("user_1", Severity.CRITICAL)], ["user_1"])
        cursor = dispatch_incident_alerts(engine, alerting, LOG, None).cursor
        incident_id = incident_of(engine, "user_1")["incident_id"]
        resolved = incidents.resolve(engine, incident_id, actor="bob", note="balance corrected by support ticket 88")
        assert (resolved["state"], resolved["resolution"], resolved["resolved_by"]) == ("resolved", "manual", "bob")
        cursor = dispatch_incident_alerts(engine, alerting, LOG, cursor).cursor  # the resolved notice
        with pytest.raises(incidents.InvalidAction, match="already resolved"):
            incidents.resolve(engine, incident_id, actor="bob", note="twice")

        _persist(engine, "r2", [("user_1", Severity.CRITICAL)], ["user_1"])  # the drift is back
        dispatch_incident_alerts(engine, alerting, LOG, cursor)
    reopened = incident_of(engine, "user_1")
    assert (reopened["state"], reopened["occurrences"], reopened["resolution"], reopened["resolved_by"]) == (
        "open", 2, None, None)
    assert events_of(engine, incident_id) == [
        ("opened", 1, "pipeline", None, "r1"),
        ("resolved", 1, "bob", "balance corrected by support ticket 88", None),
        ("reopened", 2, "pipeline", None, "r2")]
    assert sent_texts(webhook) == ["[CRITICAL] 1 new drift incident in balances",
                                   "[RESOLVED] 1 drift incident resolved in balances",
                                   "[CRITICAL] 1 new drift incident in balances"]
    assert "resolved by hand" in json.loads(webhook.requests[1].body)["blocks"][-1]["elements"][0]["text"]


def test_the_incidents_command_acts_and_refuses_clearly(
    engine: sa.Engine, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    _persist(engine, "r1", [("user_1", Severity.CRITICAL), ("user_2", Severity.WARN)], ["user_1", "user_2"])
    one, two = (incident_of(engine, f"user_{n}")["incident_id"] for n in (1, 2))

    def recon(*args: str) -> tuple[int, str, str]:
        code = cli.main(["incidents", *map(str, args)])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = recon("list", "--json")
    assert code == 0 and [(r["incident_id"], r["severity"]) for r in json.loads(out)] == [
        (one, "CRITICAL"), (two, "WARN")]  # CRITICAL first
    assert recon("ack", one, "--until", "4h", "--reason", "on it", "--by", "erin")[0] == 0
    assert recon("show", one, "--json")[1].count('"acknowledged"') == 1
    code, out, _ = recon("exempt", two, "--reason", "test account", "--expires", "7d", "--owner", "payments",
                         "--by", "erin")
    assert code == 0 and f"exempts 1 open incidents now: [{two}]" in out
    code, out, _ = recon("rules", "--json")
    (rule,) = json.loads(out)
    assert (rule["entity_pattern"], rule["owner"], rule["created_by"], rule["status"]) == (
        "user_2", "payments", "erin", "active")
    assert recon("resolve", one, "--note", "fixed in the app", "--by", "erin")[0] == 0
    code, out, _ = recon("list", "--state", "resolved", "--json")
    assert [(r["incident_id"], r["resolution"], r["resolved_by"]) for r in json.loads(out)] == [(one, "manual", "erin")]

    for args, message in [
        (("show", 999), "no incident 999"),
        (("ack", 999, "--until", "1h", "--reason", "x"), "no incident 999"),
        (("resolve", 999, "--note", "x"), "no incident 999"),
        (("ack", two, "--until", "2020-01-01T00:00:00", "--reason", "x"), "is not in the future"),
        (("ack", two, "--until", "soon", "--reason", "x"), "neither a duration"),
        (("exempt", two, "--reason", "x", "--expires", "2020-01-01"), "is not in the future"),
        (("exempt", "--revoke", 999, "--reason", "x"), "no exemption rule 999"),
        (("exempt", "--domain", "balances", "--class", "WRONG", "--reason", "x", "--expires", "1d"),
         "unknown drift class 'WRONG'"),
        (("resolve", one, "--note", "again"), "already resolved"),
    ]:
        code, _, err = recon(*args)
        assert (code, message in err) == (2, True), (args, err)
    code, _, err = recon("exempt", "--revoke", rule["rule_id"], "--reason", "done", "--by", "erin")
    assert code == 0
    code, _, err = recon("exempt", "--revoke", rule["rule_id"], "--reason", "done")
    assert code == 2 and "already revoked" in err
