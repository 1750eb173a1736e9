"""The README's production section, done exactly as written: a fresh process with only its variables,
a PostgreSQL holding only the application tables (and their rows), a devnet started separately.

Nothing of the demo may apply: no embedded PostgreSQL, no devnet contract ids, no reference schema,
no seeding. The commands come from the README itself (its production block), with the day replaced.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from recon_demo.identities import DEVNET
from recon_demo.world import WorldSizes, build_demo_world, load_demo_world_into_ledger, write_demo_world_to_db
from reconciliation_pipeline import localenv
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.localenv import PROJECT_ROOT
from reconciliation_pipeline.resources import sqlalchemy_url
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

README = PROJECT_ROOT / "README.md"
SECTION = "## Pointing it at a real database and RPC"
CATALOGUE_KEY = ["domain", "entity_type", "entity_id", "field", "drift_class", "severity"]
SIZES = WorldSizes(streams=40, loans=20, markets=20, users=260)
RECON = str(Path(sys.executable).with_name("recon"))


def readme_block() -> list[str]:
    """The lines of the production section's first shell block."""
    text = README.read_text()
    section = text[text.index(SECTION):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the production section has a ```sh block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def readme_variables() -> list[str]:
    """The variables the block exports."""
    return [name for line in readme_block() if line.startswith("export ")
            for name in re.findall(r"(?:^export |\s)([A-Z_]+)=", line)]


def readme_commands() -> list[str]:
    return [line for line in readme_block() if line.startswith("recon ")]


@pytest.fixture
def app_database(pg_admin_url: str) -> Iterator[str]:
    """A database with only the reference application tables: no recon schema."""
    name = f"prod_path_{os.getpid()}"
    localenv.drop_database(pg_admin_url, name)
    localenv.ensure_database(pg_admin_url, name)
    yield localenv.with_database(pg_admin_url, name)
    localenv.drop_database(pg_admin_url, name)


def tables(engine: sa.Engine) -> set[tuple[str, str]]:
    with engine.connect() as connection:
        return set(connection.execute(sa.text(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")).tuples())


def run_recon(command: str, env: dict[str, str], day: str) -> subprocess.CompletedProcess[str]:
    argv = [RECON, *re.sub(r"\d{4}-\d{2}-\d{2}", day, command).split()[1:]]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=env["HOME"])


def test_the_readme_production_section_works_the_first_time(app_database: str, tmp_path: Path) -> None:
    reference_time = datetime.now(UTC)
    day = (reference_time - timedelta(days=1)).strftime("%Y-%m-%d")
    engine = sa.create_engine(sqlalchemy_url(app_database))
    try:
        sql.apply_reference_app_schema(engine)
        world = build_demo_world(SIZES, reference_time=reference_time)
        write_demo_world_to_db(engine, world, progress=lambda _: None)
        ledger = DevnetLedger()
        load_demo_world_into_ledger(ledger, world, progress=lambda _: None, engine=engine)
        app_tables = tables(engine)
        assert not {t for t in app_tables if t[0] == "recon"}

        with DevnetServer(ledger) as devnet:
            # Yours: the database, the RPC, the network, the contract ids and the issuer (here the devnet's).
            yours = {"DATABASE_URL": app_database, "SOROBAN_RPC_URL": devnet.url, **DEVNET.environment()}
            names = readme_variables()
            assert set(names) >= {"DATABASE_URL", "SOROBAN_RPC_URL", "STREAM_CONTRACT_ID", "USDC_ISSUER"}
            env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **{name: yours[name] for name in names}}
            commands = readme_commands()
            assert [c.split()[1] for c in commands] == ["migrate", "run", "run"]

            # Before the migration a run refuses, naming the command; a missing contract id is named.
            refused = run_recon(commands[1], env, day)
            assert refused.returncode == 2 and "recon migrate" in refused.stderr
            without_id = run_recon(commands[1], {k: v for k, v in env.items() if k != "AMM_CONTRACT_ID"}, day)
            assert without_id.returncode == 2 and "AMM_CONTRACT_ID" in without_id.stderr

            migrated = run_recon(commands[0], env, day)
            assert migrated.returncode == 0, migrated.stderr
            created = tables(engine) - app_tables
            assert created and all(schema == "recon" for schema, _ in created)  # never an application table
            assert run_recon(commands[0], env, day).stdout.startswith("the recon schema is up to date")

            outputs = [run_recon(command, env, day) for command in commands[1:]]
        for done in outputs:
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            assert "Findings:" in done.stdout and "By domain" in done.stdout
        run_ids = [m for done in outputs for m in re.findall(r"^run (\S+) succeeded", done.stdout, re.M)]
        assert len(run_ids) == 2

        with engine.connect() as connection:
            found = set(connection.execute(sa.text(
                "SELECT DISTINCT domain, entity_type, entity_id, field, drift_class, severity "
                "FROM recon.discrepancies WHERE run_id = ANY(:r)"),
                {"r": run_ids}).tuples())
        expected = set(map(tuple, world.expected_findings()[CATALOGUE_KEY].itertuples(index=False)))
        assert found == expected

        # Dagster kept the runs in PostgreSQL (DAGSTER_PG_URL defaults to DATABASE_URL), not in SQLite files.
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT count(*) FROM runs WHERE run_id = ANY(:r)"),
                                        {"r": run_ids}).scalar_one()
        assert stored == 2
        home = tmp_path / ".local/state/recon/dagster_home"
        assert (home / "dagster.yaml").is_symlink() and not list(home.rglob("*.db"))
    finally:
        engine.dispose()
