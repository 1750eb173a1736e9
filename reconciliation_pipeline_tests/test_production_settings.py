"""The pieces of the production path one at a time: defaults that hold without a launcher, the schema
version check, the SQLite fallback refused, and a launcher that applies nothing of the devnet's to
your RPC."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from recon_demo.identities import DEVNET
from reconciliation_pipeline import localenv
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline.instance.home import InstanceConfigError, ensure_dagster_home, packaged_instance_file
from reconciliation_pipeline.resources import ReconSettingsResource, SorobanRpcResource, build_resources, sqlalchemy_url
from reconciliation_pipeline.settings import ENV_SETTINGS, SettingError
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.server import DevnetServer

TUNING = [s.name for s in ENV_SETTINGS if s.name.startswith(("RPC_", "RECON_", "RUN_", "NIGHTLY_", "ODDS_", "USDC_B"))]


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of the tuning variables set: what `dagster job execute` sees without a launcher or .env."""
    for name in TUNING:
        monkeypatch.delenv(name, raising=False)


def test_the_bound_resources_run_with_only_the_required_variables_set(
    bare_environment: None, monkeypatch: pytest.MonkeyPatch, database_url: str, devnet: DevnetServer
) -> None:
    """`build_resources()` as the code location binds them, no launcher and no .env: every tuning variable
    unset takes its documented default when the run starts."""
    for name in ("ALERT_ROUTES_FILE", "ALERT_WEBHOOK_URL", "PROMETHEUS_PUSHGATEWAY_URL", "STREAK_SYNC_ENABLED",
                 "ORACLE_SECRET_KEY", "USDC_ASSET_CODE", "STELLAR_NETWORK_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    required = {"DATABASE_URL": database_url, "SOROBAN_RPC_URL": devnet.url,
                **{k: v for k, v in DEVNET.environment().items() if k.endswith(("_CONTRACT_ID", "_ISSUER"))}}
    for name, value in required.items():
        monkeypatch.setenv(name, value)
    result = dg.materialize(STREAMS.assets("nightly"), resources=build_resources(), partition_key="2026-11-30")
    assert result.success
    reader = SorobanRpcResource(rpc_url=devnet.url).reader_settings()
    assert (reader.max_in_flight, reader.max_attempts, reader.backoff_initial_s, reader.request_timeout_s,
            reader.max_response_bytes) == (5, 3, 1.0, 10.0, 64 * 1024 * 1024)
    settings = ReconSettingsResource().resolved()
    assert (settings.confirm_after_runs, settings.run_time_limit_s, settings.nightly_run_time_limit_s,
            settings.usdc_balance_tolerance, settings.odds_threshold()) == (2, 240, 7200, 10, 0.01)


def test_a_variable_set_wins_and_a_bad_one_is_named(bare_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPC_MAX_IN_FLIGHT", "9")
    assert SorobanRpcResource(rpc_url="http://127.0.0.1:1").reader_settings().max_in_flight == 9
    assert SorobanRpcResource(rpc_url="http://127.0.0.1:1", max_in_flight=2).reader_settings().max_in_flight == 2
    monkeypatch.setenv("RUN_TIME_LIMIT_SECONDS", "soon")
    with pytest.raises(SettingError, match="RUN_TIME_LIMIT_SECONDS must be a whole number, got 'soon'"):
        ReconSettingsResource().resolved()


@pytest.fixture
def app_only_database(pg_admin_url: str) -> Iterator[str]:
    name = "prod_settings_app_only"
    localenv.drop_database(pg_admin_url, name)
    localenv.ensure_database(pg_admin_url, name)
    url = localenv.with_database(pg_admin_url, name)
    engine = sa.create_engine(sqlalchemy_url(url))
    sql.apply_reference_app_schema(engine)
    engine.dispose()
    yield url
    localenv.drop_database(pg_admin_url, name)


def test_a_run_on_an_unmigrated_schema_fails_naming_recon_migrate(app_only_database: str,
                                                                  devnet: DevnetServer) -> None:
    result = dg.materialize(STREAMS.assets("nightly"), resources=make_resources(app_only_database, devnet.url),
                            partition_key="2026-11-30", raise_on_error=False)
    assert not result.success
    errors = [str(e.event_specific_data.error) for e in result.all_events if e.is_failure]
    assert any("run `recon migrate`" in e and "001_recon_schema.sql" in e for e in errors)

    engine = sa.create_engine(sqlalchemy_url(app_only_database))
    try:
        assert len(sql.pending_migrations(engine)) == len(sql.available_migrations())
        sql.apply_recon_migrations(engine)
        assert sql.pending_migrations(engine) == []
    finally:
        engine.dispose()


def test_a_run_that_would_fall_back_to_sqlite_while_dagster_pg_url_is_set_fails(
    tmp_path: Path, database_url: str, devnet: DevnetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/dagster")
    with dg.DagsterInstance.local_temp(str(tmp_path)) as sqlite_instance:
        result = dg.materialize(STREAMS.assets("nightly"), resources=make_resources(database_url, devnet.url),
                                partition_key="2026-11-30", instance=sqlite_instance, raise_on_error=False)
    assert not result.success
    errors = [str(e.event_specific_data.error) for e in result.all_events if e.is_failure]
    assert any(InstanceConfigError.__name__ in e and "recon dagster-home" in e for e in errors)


def test_a_dagster_home_links_the_packaged_instance_file_and_keeps_an_operators_own(tmp_path: Path) -> None:
    home = ensure_dagster_home(tmp_path / "home")
    assert (home / "dagster.yaml").resolve() == packaged_instance_file().resolve()
    own = tmp_path / "own"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    ensure_dagster_home(own)
    assert (own / "dagster.yaml").read_text() == "telemetry: {enabled: false}\n"


def test_with_your_rpc_nothing_of_the_devnets_applies() -> None:
    yours = {"DATABASE_URL": "postgresql://u@db/app", "SOROBAN_RPC_URL": "https://rpc.example"}
    with pytest.raises(localenv.MissingVariableError, match="STREAM_CONTRACT_ID is not set"):
        localenv.resolve_environment(yours, {**DEVNET.environment(), "SOROBAN_RPC_URL": "http://127.0.0.1:8765"})
    complete = {**yours, **{k: v for k, v in DEVNET.environment().items() if k.endswith(("_ID", "ISSUER"))}}
    resolved = localenv.resolve_environment(complete, {"STREAM_CONTRACT_ID": "C-devnet", "SOROBAN_RPC_URL": "x"})
    assert resolved["SOROBAN_RPC_URL"] == "https://rpc.example"
    assert resolved["STREAM_CONTRACT_ID"] == DEVNET.environment()["STREAM_CONTRACT_ID"]


def test_with_your_rpc_and_no_stream_contract_every_command_names_it_and_writes_nothing(
    app_only_database: str, tmp_path: Path
) -> None:
    engine = sa.create_engine(sqlalchemy_url(app_only_database))
    before = sql.pending_migrations(engine), _tables(engine)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DATABASE_URL": app_only_database,
           "SOROBAN_RPC_URL": "http://127.0.0.1:9",
           **{k: v for k, v in DEVNET.environment().items() if k != "STREAM_CONTRACT_ID"}}
    recon = str(Path(sys.executable).with_name("recon"))
    for command in (["run", "nightly_reconciliation"], ["env"], ["ui"]):
        done = subprocess.run([recon, *command], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "STREAM_CONTRACT_ID" in done.stderr, (command, done.stderr[-2000:])
    assert (sql.pending_migrations(engine), _tables(engine)) == before
    engine.dispose()


def _tables(engine: sa.Engine) -> set[tuple[str, str]]:
    with engine.connect() as connection:
        return set(connection.execute(sa.text(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")).tuples())
