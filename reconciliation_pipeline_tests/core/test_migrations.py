"""Upgrading a recon schema that already holds incidents and alerts to migrations 010 and 011, and one
at 011 without 009 (main's deployments before chain history) to 009 and 012."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from reconciliation_pipeline import localenv
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.resources import sqlalchemy_url


@contextmanager
def schema_with(pg_admin_url: str, versions: Callable[[int], bool]) -> Iterator[sa.Engine]:
    """A database migrated with only the migrations whose version `versions` accepts."""
    name = f"recon_upgrade_{uuid.uuid4().hex[:10]}"
    localenv.ensure_database(pg_admin_url, name)
    engine = sa.create_engine(sqlalchemy_url(localenv.with_database(pg_admin_url, name)))
    with engine.begin() as connection:
        sql.run_script(connection, sql.read_sql("recon/bootstrap.sql"))
        for migration in sql.PIPELINE_SQL.files("recon/migrations"):
            version = int(migration.name[:3])
            if versions(version):
                sql.run_script(connection, migration.read_text())
                connection.execute(sql.query("recon/queries/record_migration.sql"),
                                   {"version": version, "name": migration.name})
    try:
        yield engine
    finally:
        engine.dispose()
        localenv.drop_database(pg_admin_url, name)


@pytest.fixture
def old_schema(pg_admin_url: str) -> Iterator[sa.Engine]:
    """A database migrated up to 007 only, the way a deployment before this change has it."""
    with schema_with(pg_admin_url, lambda version: version < 8) as engine:
        yield engine


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


def test_a_schema_at_011_without_009_gets_chain_history_and_counts_no_drift_in_flight(pg_admin_url: str) -> None:
    with schema_with(pg_admin_url, lambda version: version <= 11 and version != 9) as engine:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO recon.discrepancies (run_id, domain, entity_type, entity_id, field, drift_class, "
                "severity, partition_key, details) VALUES "
                "('r1', 'streams', 'stream', 'stream_2', 'released', 'VALUE_MISMATCH', 'WARN', '2026-11-20', '{}')"))
        assert sql.apply_recon_migrations(engine) == ["009_chain_history.sql", "012_in_flight_views.sql",
                                                  "013_recompute_only_runs.sql"]
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO recon.discrepancies (run_id, domain, entity_type, entity_id, field, drift_class, "
                "severity, partition_key, details, status) VALUES "
                "('r2', 'streams', 'stream', 'stream_9', '*', 'ARCHIVED', 'WARN', '2026-11-20', '{}', 'drift'), "
                "('r2', 'streams', 'stream', 'stream_7', 'released', 'VALUE_MISMATCH', 'WARN', '2026-11-20', '{}', "
                "'in_flight')"))
            counts = dict(connection.execute(sa.text(
                "SELECT drift_class, finding_rows FROM recon.daily_drift_counts")).tuples().all())
            uncommented = connection.execute(sa.text(
                "SELECT a.attname FROM pg_attribute AS a WHERE a.attrelid = 'recon.daily_drift_counts'::regclass "
                "AND a.attnum > 0 AND col_description(a.attrelid, a.attnum) IS NULL")).scalars().all()
            old_row = connection.execute(sa.text(
                "SELECT status FROM recon.discrepancies WHERE run_id = 'r1'")).scalar_one()
    assert counts == {"VALUE_MISMATCH": 1, "ARCHIVED": 1}  # the finding in flight is not counted
    assert old_row == "drift"
    assert uncommented == []  # replacing the view kept its columns' comments
