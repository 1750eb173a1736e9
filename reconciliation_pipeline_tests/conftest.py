"""Shared fixtures: a real PostgreSQL and the devnet over HTTP.

PostgreSQL is the embedded server (started once per session under
.local/test-pgdata) unless TEST_DATABASE_URL names a server whose user may
create databases. Each test gets a fresh database cloned from a migrated
template, so tests never see each other's rows. `make test` runs the tests in
worker processes (pytest-xdist), which share the embedded server: it stops when
the last of them exits; each builds its own template.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from recon_demo.identities import DEVNET
from reconciliation_pipeline import localenv
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.metrics import PushgatewayResource
from reconciliation_pipeline.resources import (
    PostgresResource,
    ReconSettingsResource,
    SorobanRpcResource,
    sqlalchemy_url,
)
from reconciliation_pipeline.settings import ENV_SETTINGS
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    if "TEST_DATABASE_URL" in os.environ:
        return os.environ["TEST_DATABASE_URL"]
    return localenv.start_embedded_postgres(localenv.LOCAL_DIR / "test-pgdata", keep_running=False)


@pytest.fixture(scope="session")
def template_database(pg_admin_url: str) -> Iterator[str]:
    """The schema every test database is cloned from; one per session, so
    concurrent sessions on one server never clone each other's half-built template."""
    name = f"recon_test_template_{os.getpid()}"
    localenv.drop_database(pg_admin_url, name)
    localenv.ensure_database(pg_admin_url, name)
    engine = sa.create_engine(sqlalchemy_url(localenv.with_database(pg_admin_url, name)))
    try:
        sql.apply_reference_app_schema(engine)
        sql.apply_recon_migrations(engine)
    finally:
        engine.dispose()
    yield name
    localenv.drop_database(pg_admin_url, name)


@pytest.fixture
def database_url(pg_admin_url: str, template_database: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql as pgsql

    name = f"recon_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as connection:
        connection.execute(
            pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                pgsql.Identifier(name), pgsql.Identifier(template_database)
            )
        )
    yield localenv.with_database(pg_admin_url, name)
    localenv.drop_database(pg_admin_url, name)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(sqlalchemy_url(database_url))
    yield engine
    engine.dispose()


@pytest.fixture
def ledger() -> DevnetLedger:
    """A devnet ledger whose ledgers close only by hand (deterministic)."""
    return DevnetLedger(ledger_close_seconds=math.inf)


@pytest.fixture
def devnet(ledger: DevnetLedger) -> Iterator[DevnetServer]:
    with DevnetServer(ledger) as server:
        yield server


@pytest.fixture
def reference_time() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def yesterday(reference_time: datetime) -> str:
    return (reference_time - timedelta(days=1)).strftime("%Y-%m-%d")


def make_resources(database_url: str, rpc_url: str, *, settings: dict[str, object] | None = None,
                   pushgateway_url: str = "", **rpc: int) -> dict[str, object]:
    """Concrete resources for in-process runs (no environment involved)."""
    rpc_settings = {"max_in_flight": 5, "max_attempts": 3, "backoff_initial_ms": 10, "request_timeout_ms": 5000, **rpc}
    return {
        "postgres": PostgresResource(database_url=database_url),
        "soroban_rpc": SorobanRpcResource(rpc_url=rpc_url, **rpc_settings),
        "contracts": DEVNET.contracts_resource(),
        "settings": ReconSettingsResource(confirm_after_runs=2, confirm_grace_minutes=60, **(settings or {})),
        "pushgateway": PushgatewayResource(pushgateway_url=pushgateway_url),
    }


@pytest.fixture
def pipeline_env(monkeypatch: pytest.MonkeyPatch, database_url: str, devnet: DevnetServer) -> None:
    """The environment a deployment sets, pointing at this test's database and devnet."""
    values = {s.name: s.default for s in ENV_SETTINGS if s.default != "(embedded)"}
    values.update(DEVNET.environment())
    values.update(DATABASE_URL=database_url, SOROBAN_RPC_URL=devnet.url, RPC_BACKOFF_INITIAL_MS="10")
    for name, value in values.items():
        monkeypatch.setenv(name, value)
