"""The whole nightly job and the every-5-minutes jobs under the shipped least-privileged role.

`sql/roles/recon_pipeline.sql` is run as the database owner, exactly as shipped; then the
migrations and every job run as `recon_pipeline`, with repairs applied, against the demo world.
The role is then shown to be unable to do what it should not (DDL outside recon, other columns,
deletes), and every repair query is checked to be within its grants.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime

import dagster as dg
import pytest
import sqlalchemy as sa
from psycopg import sql as pgsql
from sqlalchemy.engine import make_url

from recon_demo.identities import DEVNET
from recon_demo.world import WorldSizes, build_demo_world, load_demo_world_into_ledger, write_demo_world_to_db
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.definitions import defs as load_defs
from reconciliation_pipeline.localenv import drop_database, ensure_database, with_database
from reconciliation_pipeline.resources import sqlalchemy_url
from reconciliation_pipeline.settings import ENV_SETTINGS
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

ROLE = "recon_pipeline"
PASSWORD = "least-privilege-test"
REPAIRS = {"stream_repairs", "lending_repairs", "user_streak_repairs", "lending_sweep_repairs"}


def _as_role(url: str) -> str:
    return make_url(url).set(username=ROLE, password=PASSWORD).render_as_string(hide_password=False)


def _grant_role(admin_url: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(admin_url))
    with engine.begin() as connection:
        sql.run_script(connection, sql.read_sql("roles/recon_pipeline.sql"))
        # DDL takes no bound parameters: the role and password are quoted by psycopg.
        statement = pgsql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(pgsql.Identifier(ROLE), pgsql.Literal(PASSWORD))
        connection.connection.driver_connection.execute(statement)
    engine.dispose()


@pytest.fixture
def role_url(database_url: str) -> str:
    """The test's database (recon already migrated by its owner) handed over to the role."""
    _grant_role(database_url)
    return _as_role(database_url)


@pytest.fixture
def role_env(role_url: str, devnet: DevnetServer, monkeypatch: pytest.MonkeyPatch) -> None:
    values = {s.name: s.default for s in ENV_SETTINGS if s.default != "(embedded)"}
    values.update(DEVNET.environment())
    values.update(DATABASE_URL=role_url, SOROBAN_RPC_URL=devnet.url, RPC_BACKOFF_INITIAL_MS="10")
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def fresh_database(pg_admin_url: str) -> Iterator[str]:
    name = f"lp_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name)
    yield with_database(pg_admin_url, name)
    drop_database(pg_admin_url, name)


def test_on_a_fresh_database_the_role_creates_recon_through_the_migrations(fresh_database: str) -> None:
    owner = sa.create_engine(sqlalchemy_url(fresh_database))
    sql.apply_reference_app_schema(owner)
    owner.dispose()
    _grant_role(fresh_database)
    role = sa.create_engine(sqlalchemy_url(_as_role(fresh_database)))
    applied = sql.apply_recon_migrations(role)
    assert applied[0].startswith("001_") and len(applied) == len(list(sql.PIPELINE_SQL.files("recon/migrations")))
    assert sql.apply_recon_migrations(role) == []
    with role.connect() as connection:
        owner_of_recon = connection.execute(sa.text(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'recon'")).scalar_one()
        may_create = connection.execute(sa.text(
            "SELECT has_database_privilege(current_user, current_database(), 'CREATE')")).scalar_one()
    role.dispose()
    assert owner_of_recon == ROLE and may_create is False


def _run(job: str, partition: str | None, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    return load_defs().resolve_job_def(job).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=partition, run_config=run_config or {},
        raise_on_error=False)


def _apply(job: str) -> dict:
    selected = {k.to_user_string() for k in load_defs().resolve_job_def(job).asset_layer.selected_asset_keys}
    return {"ops": {name: {"config": {"apply": True}} for name in REPAIRS & selected}}


def test_every_job_runs_and_repairs_under_the_role(
    role_env: None, role_url: str, engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime, yesterday: str,
) -> None:
    assert sql.apply_recon_migrations(sa.create_engine(sqlalchemy_url(role_url))) == []  # recon exists: no CREATE
    world = build_demo_world(WorldSizes(streams=60, loans=20, markets=15, users=250), reference_time)
    write_demo_world_to_db(engine, world, lambda _: None)
    load_demo_world_into_ledger(ledger, world, lambda _: None, engine)

    for job, partition in (("nightly_reconciliation", yesterday), ("markets_balances_reconciliation", None),
                           ("lending_sweep", None), ("streams_incremental", None),
                           ("streak_reconciliation", yesterday)):
        result = _run(job, partition, _apply(job))
        failures = [str(e.event_specific_data.error.message) for e in result.all_events
                    if e.is_step_failure and e.event_specific_data is not None]
        assert result.success, f"{job}: {failures}"

    with engine.connect() as connection:
        repairs = dict(connection.execute(sa.text("SELECT state, count(*) FROM recon.repairs GROUP BY state")).all())
        statuses = set(connection.execute(sa.text("SELECT DISTINCT status FROM recon.runs")).scalars())
        creator = connection.execute(sa.text(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'recon'")).scalars().all()
    assert repairs.get("applied", 0) > 0 and "failed" not in repairs, repairs
    assert statuses <= {"succeeded", "partial"}
    assert creator == [ROLE]


@pytest.mark.parametrize("statement", [
    "UPDATE streams SET total_amount = 1",
    "DELETE FROM streams",
    "UPDATE users SET usdc_balance = 0",
    "INSERT INTO streams (id, sender_address, recipient_address, token_address, total_amount, released_amount, "
    "status) VALUES (1, 'a', 'b', 'c', 1, 0, 'active')",
    "CREATE TABLE public.planted (id int)",
    "CREATE SCHEMA planted",
])
def test_the_role_cannot_do_what_no_step_needs(role_url: str, statement: str) -> None:
    role = sa.create_engine(sqlalchemy_url(role_url))
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), role.begin() as connection:
        connection.execute(sa.text(statement))
    role.dispose()


def _written_columns(statement: str) -> tuple[str, str, list[str]]:
    """(privilege, table, columns) of a repair's UPDATE ... SET or INSERT INTO ... (columns)."""
    body = re.sub(r"--[^\n]*", "", statement)
    update = re.search(r"UPDATE\s+(\w+)\s+SET\s+(.*?)\s+WHERE", body, flags=re.S | re.I)
    if update is not None:
        columns = re.findall(r"(\w+)\s*=\s*(?![=])", update.group(2))
        return "UPDATE", update.group(1), [c for c in columns if not c.isupper()]
    insert = re.search(r"INSERT\s+INTO\s+(\w+)\s*\(([^)]*)\)", body, flags=re.S | re.I)
    assert insert is not None, f"a repair that neither updates nor inserts: {statement[:80]}"
    return "INSERT", insert.group(1), [c.strip() for c in insert.group(2).split(",")]


def test_every_repair_query_is_within_the_role_grants(role_url: str) -> None:
    role = sa.create_engine(sqlalchemy_url(role_url))
    missing = []
    with role.connect() as connection:
        domains = sorted(d.name for d in sql.PIPELINE_SQL.root.joinpath("repairs").iterdir() if d.is_dir())
        for path in (f for domain in domains for f in sql.PIPELINE_SQL.files(f"repairs/{domain}")):
            privilege, table, columns = _written_columns(path.read_text())
            assert columns, path.name
            for column in columns:
                allowed = connection.execute(sa.text("SELECT has_column_privilege(:table, :column, :privilege)"),
                                             {"table": table, "column": column, "privilege": privilege}).scalar_one()
                if not allowed:
                    missing.append(f"{path.name}: {privilege} {table}.{column}")
    role.dispose()
    assert missing == []
