"""Upgrading a recon schema that already holds incidents and alerts to migrations 010 and 011."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from reconciliation_pipeline import localenv
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.resources import sqlalchemy_url


@pytest.fixture
def old_schema(pg_admin_url: str) -> Iterator[sa.Engine]:
    """A database migrated up to 007 only, the way a deployment before this change has it."""
    name = f"recon_upgrade_{uuid.uuid4().hex[:10]}"
    localenv.ensure_database(pg_admin_url, name)
    engine = sa.create_engine(sqlalchemy_url(localenv.with_database(pg_admin_url, name)))
    with engine.begin() as connection:
        sql.run_script(connection, sql.read_sql("recon/bootstrap.sql"))
        for migration in sql.PIPELINE_SQL.files("recon/migrations"):
            version = int(migration.name[:3])
            if version < 8:
                sql.run_script(connection, migration.read_text())
                connection.execute(sql.query("recon/queries/record_migration.sql"),
                                   {"version": version, "name": migration.name})
    yield engine
    engine.dispose()
    localenv.drop_database(pg_admin_url, name)


def test_existing_incidents_and_alerts_survive_the_upgrade(old_schema: sa.Engine) -> None:
    with old_schema.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO recon.drift_incidents (domain, entity_type, entity_id, field, drift_class, severity, state, "
            "first_seen_at, last_seen_at, first_run_id, last_run_id, consecutive_runs, occurrences, resolved_at) VALUES "
            "('markets', 'market', 'market_4', 'winning_outcome', 'VALUE_MISMATCH', 'CRITICAL', 'confirmed', now(), "
            "now(), 'r1', 'r2', 2, 1, NULL), "
            "('balances', 'user', 'user_1', 'usdc_balance', 'VALUE_MISMATCH', 'WARN', 'resolved', now(), now(), "
            "'r1', 'r3', 0, 2, now())"))
        connection.execute(sa.text(
            "INSERT INTO recon.alerts (incident_id, occurrence, severity, route, status, sinks, payload) "
            "SELECT incident_id, 1, severity, 'immediate', 'sent', '{log,webhook}', '{}'::jsonb "
            "FROM recon.drift_incidents WHERE entity_id = 'market_4'"))
    applied = sql.apply_recon_migrations(old_schema)
    assert applied == [m.name for m in sql.PIPELINE_SQL.files("recon/migrations") if int(m.name[:3]) > 7]
    assert [m for m in applied if m[:3] in ("010", "011")] == ["010_operating.sql", "011_analyst_views.sql"]
    assert sql.apply_recon_migrations(old_schema) == []
    with old_schema.connect() as connection:
        alert = connection.execute(sa.text("SELECT kind, channels, sinks, status FROM recon.alerts")).one()
        incidents = dict(connection.execute(sa.text(
            "SELECT entity_id, resolution FROM recon.drift_incidents")).tuples().all())
        events = connection.execute(sa.text(
            "SELECT i.entity_id, e.event, e.occurrence FROM recon.incident_events AS e "
            "JOIN recon.drift_incidents AS i USING (incident_id) ORDER BY 1")).all()
        unalerted = connection.execute(sa.text("SELECT count(*) FROM recon.unalerted_incidents")).scalar_one()
    assert tuple(alert) == ("trigger", ["log", "webhook"], ["log", "webhook"], "sent")
    assert incidents == {"market_4": None, "user_1": "auto"}
    assert [tuple(e) for e in events] == [("market_4", "opened", 1), ("user_1", "reopened", 2)]
    assert unalerted == 0  # market_4 alerted before the upgrade: it does not alert again
