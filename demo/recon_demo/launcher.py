"""The demo's commands of `recon`: `demo`, `ui`, `devnet` and `env` (behind `make demo`, `make ui`, ...).

They provide the zero set-up defaults (embedded PostgreSQL, local devnet), seed
both sides, and run the jobs through a real Dagster instance. `register` adds
them to the product's `recon` command when this package is installed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from recon_demo import DEMO_SQL
from recon_demo.identities import DEVNET
from recon_demo.world import (
    DemoWorld,
    WorldSizes,
    build_demo_world,
    load_demo_world_into_ledger,
    write_demo_world_to_db,
)
from recon_demo.worlds.streaks import oracle_environment
from reconciliation_pipeline import localenv
from reconciliation_pipeline.cli import say
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.resources import sqlalchemy_url
from reconciliation_pipeline.settings import SETTINGS_BY_NAME
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
"""The assets' own progress lines on the console, without Dagster's per-event DEBUG lines
(every event is still in the run's log in the UI)."""


def _default_size(variable: str) -> int:
    return int(os.environ.get(variable, SETTINGS_BY_NAME[variable].default))


def _sizes(args: argparse.Namespace) -> WorldSizes:
    return WorldSizes(streams=args.streams, loans=args.loans, markets=args.markets, users=args.users)


def _engine(database_url: str) -> sa.Engine:
    return sa.create_engine(sqlalchemy_url(database_url))


def prepare_database(database_url: str) -> None:
    engine = _engine(database_url)
    try:
        sql.apply_reference_app_schema(engine)
        applied = sql.apply_recon_migrations(engine)
        say(f"database ready ({len(applied)} recon migrations applied now)")
    finally:
        engine.dispose()


def _report_pending_migrations(database_url: str) -> None:
    """Your database is never written by the launcher: no reference schema, no seeding, no migrations."""
    engine = _engine(database_url)
    try:
        pending = sql.pending_migrations(engine)
    finally:
        engine.dispose()
    if pending:
        say(f"DATABASE_URL's recon schema lacks {len(pending)} migration(s); runs will refuse to start until "
            "you run `recon migrate` (make migrate)")


def seeded_devnet(world: DemoWorld, database_url: str, port: int = 0) -> tuple[DevnetLedger, DevnetServer]:
    ledger = DevnetLedger()
    engine = _engine(database_url)
    try:
        load_demo_world_into_ledger(ledger, world, progress=say, engine=engine)
    finally:
        engine.dispose()
    return ledger, DevnetServer(ledger, port=port)


def _print_summary(database_url: str, run_ids: list[str]) -> None:
    engine = _engine(database_url)
    try:
        with engine.connect() as connection:
            counts = connection.execute(DEMO_SQL.query("demo/findings_by_class.sql"), {"run_ids": run_ids}).all()
            stream_2 = connection.execute(DEMO_SQL.query("demo/stream_2.sql"), {"run_ids": run_ids}).mappings().first()
            incidents = connection.execute(DEMO_SQL.query("demo/incident_states.sql")).all()
    finally:
        engine.dispose()
    print("\nFindings of these runs by domain and drift class:")
    for domain, drift_class, severity, count in counts:
        print(f"  {domain:<10} {drift_class:<26} {severity:<9} {count:>5}")
    if stream_2 is not None:
        print(
            f"\nThe known case, stream_2: {stream_2['field']} {stream_2['drift_class']}: "
            f"database {stream_2['db_value']} vs chain {stream_2['chain_value']} (delta {stream_2['delta']}), "
            f"read at ledger {stream_2['ledger_sequence']}"
        )
    print("\nIncidents by state: " + ", ".join(f"{state} {count}" for state, count in incidents))
    print(
        "\nThe typed outputs live in schema recon of the app database (recon.discrepancies, "
        "recon.drift_incidents, recon.runs, recon.repairs, and the views recon.open_drift_amounts, "
        "recon.run_changes, recon.coverage, recon.daily_drift_counts, recon.open_incidents).\n"
        "Try:  make psql   then\n"
        "  SELECT entity_id, field, drift_class, severity, db_value, chain_value, delta\n"
        "  FROM recon.discrepancies ORDER BY recon.severity_rank(severity), drift_class;\n"
        "  SELECT * FROM recon.open_drift_amounts;\n"
        "Work the incidents:  .venv/bin/recon incidents list\n"
        "Browse the run in the Dagster UI:  make ui"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """Seed both sides and run the nightly job on the embedded defaults."""
    import dagster as dg

    from reconciliation_pipeline.definitions import defs as load_defs

    say("starting the embedded PostgreSQL (the demo never touches DATABASE_URL's server)")
    env = localenv.embedded_database_environment()
    prepare_database(env["DATABASE_URL"])
    now = datetime.now(UTC)
    partition = (now - timedelta(days=1)).strftime("%Y-%m-%d")
    say(f"generating the world ({args.streams} streams, {args.loans} loans, {args.markets} markets, "
        f"{args.users} users) with its injected drift catalogues")
    world = build_demo_world(_sizes(args), reference_time=now)
    engine = _engine(env["DATABASE_URL"])
    try:
        write_demo_world_to_db(engine, world, progress=say)
    finally:
        engine.dispose()
    ledger, server = seeded_devnet(world, env["DATABASE_URL"])
    with server:
        say(f"devnet (a local Soroban RPC emulator) serving at {server.url}")
        resolved = localenv.resolve_environment(
            {**env, **_demo_overrides()}, {"SOROBAN_RPC_URL": server.url, **_devnet_defaults()}
        )
        resolved["SOROBAN_RPC_URL"] = server.url
        os.environ.update(resolved)
        instance = dg.DagsterInstance.get()
        say(f"running job nightly_reconciliation for partition {partition} (Dagster home {resolved['DAGSTER_HOME']})")
        defs = load_defs()
        nightly = defs.resolve_job_def("nightly_reconciliation").execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False, run_config=QUIET_CONSOLE
        )
        say(f"run {nightly.run_id} {'succeeded' if nightly.success else 'FAILED'}")
        say("running job markets_balances_reconciliation (the 5-minute job)")
        five_minute = defs.resolve_job_def("markets_balances_reconciliation").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE
        )
        say(f"run {five_minute.run_id} {'succeeded' if five_minute.success else 'FAILED'}; "
            f"devnet requests by method: {dict(ledger.request_counts)}")
    _print_summary(env["DATABASE_URL"], [nightly.run_id, five_minute.run_id])
    matches = _check_catalogue(env["DATABASE_URL"], [nightly.run_id, five_minute.run_id], world)
    return 0 if nightly.success and five_minute.success and matches else 1


CATALOGUE_KEY = ["domain", "entity_type", "entity_id", "field", "drift_class", "severity"]


def _check_catalogue(database_url: str, run_ids: list[str], world: DemoWorld) -> bool:
    """Compare what the runs reported with what the world's catalogues injected, and the transactions
    the findings name as the writers of their chain values with those the catalogues know."""
    engine = _engine(database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(DEMO_SQL.query("demo/run_findings.sql"), {"run_ids": run_ids}).all()
            origins = connection.execute(DEMO_SQL.query("demo/run_origins.sql"), {"run_ids": run_ids}).all()
    finally:
        engine.dispose()
    reported = {tuple(row) for row in found}
    catalogue = world.expected_findings()
    expected = set(map(tuple, catalogue[CATALOGUE_KEY].itertuples(index=False)))
    missing, unexpected = expected - reported, reported - expected
    print(f"\nCatalogue check: {len(expected)} findings injected, {len(reported)} reported, "
          f"{len(missing)} missing, {len(unexpected)} unexpected.")
    for label, rows in (("missing", missing), ("unexpected", unexpected)):
        for row in sorted(rows)[:10]:
            print(f"  {label}: {' '.join(map(str, row))}")
    named = {tuple(row[:5]): row[5] for row in origins}
    known = catalogue[catalogue["origin_tx_hash"].notna()]
    wrong = [row for row in known.itertuples(index=False)
             if named.get((row.domain, row.entity_type, row.entity_id, row.field, row.drift_class)) != row.origin_tx_hash]
    print(f"Origin check: {len(known)} findings whose writing transaction the catalogues know, "
          f"{len(known) - len(wrong)} name it.")
    for row in wrong:
        print(f"  wrong origin: {row.domain} {row.entity_id} {row.field}: expected tx {row.origin_tx_hash}")
    return not missing and not unexpected and not wrong


def _devnet_defaults() -> dict[str, str]:
    """The devnet's contract ids and its oracle key: defaults only where the devnet runs."""
    return {**DEVNET.environment(), **oracle_environment()}


def _demo_overrides() -> dict[str, str]:
    """Tuning variables the user set are honoured; the chain side is always the devnet."""
    keep = ("RPC_MAX_IN_FLIGHT", "RPC_MAX_ATTEMPTS", "RPC_BACKOFF_INITIAL_MS", "RPC_REQUEST_TIMEOUT_MS",
            "RECON_CONFIRM_AFTER_RUNS", "RECON_CONFIRM_GRACE_MINUTES", "RUN_TIME_LIMIT_SECONDS",
            "ODDS_MISMATCH_THRESHOLD", "USDC_BALANCE_TOLERANCE")
    return {k: os.environ[k] for k in keep if k in os.environ}


def cmd_devnet(args: argparse.Namespace) -> int:
    """Run a seeded devnet in the foreground until interrupted."""
    env = localenv.resolve_environment(os.environ, {**DEVNET.environment(), "SOROBAN_RPC_URL": ""})
    _, server = seeded_devnet(build_demo_world(_sizes(args), datetime.now(UTC)), env["DATABASE_URL"], port=args.port)
    server.start()
    say(f"devnet serving at {server.url} (Ctrl-C to stop)")
    for name, value in DEVNET.environment().items():
        print(f"export {name}={value!r}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


def _wait_for_devnet(url: str, timeout_s: float = 60.0) -> None:
    from stellar_sdk import SorobanServer

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            SorobanServer(url).get_health()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` against the same database as the demo and a seeded devnet."""
    port = int(os.environ.get("DEVNET_PORT", SETTINGS_BY_NAME["DEVNET_PORT"].default))
    use_devnet = "SOROBAN_RPC_URL" not in os.environ
    url = f"http://127.0.0.1:{port}"
    # With your RPC nothing of the devnet's applies (resolve_environment ignores these defaults then).
    env = localenv.resolve_environment(os.environ, {**_devnet_defaults(), "SOROBAN_RPC_URL": url})
    if "DATABASE_URL" in os.environ:
        _report_pending_migrations(env["DATABASE_URL"])
    else:
        prepare_database(env["DATABASE_URL"])
    if use_devnet and "DATABASE_URL" not in os.environ and _demo_tables_empty(env["DATABASE_URL"]):
        say("the demo database is empty: seeding the world the devnet serves")
        engine = _engine(env["DATABASE_URL"])
        try:
            write_demo_world_to_db(engine, build_demo_world(_sizes(args), datetime.now(UTC)), progress=say)
        finally:
            engine.dispose()
    devnet: subprocess.Popen[bytes] | None = None
    if use_devnet:
        devnet = subprocess.Popen(
            [sys.executable, "-m", "reconciliation_pipeline.cli", "devnet", "--port", str(port),
             "--streams", str(args.streams), "--loans", str(args.loans), "--markets", str(args.markets),
             "--users", str(args.users)],
            stdout=subprocess.DEVNULL,
        )
        _wait_for_devnet(url)
        say(f"devnet serving at {url}")
    try:
        return subprocess.call(
            [sys.executable, "-m", "dagster", "dev", "-w", str(localenv.PROJECT_ROOT / "workspace.yaml")],
            env={**os.environ, **env},
            cwd=localenv.PROJECT_ROOT,
        )
    finally:
        if devnet is not None:
            devnet.terminate()


def _demo_tables_empty(database_url: str) -> bool:
    engine = _engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(DEMO_SQL.query("demo/streams_count.sql")).scalar_one() == 0
    finally:
        engine.dispose()


def cmd_env(args: argparse.Namespace) -> int:
    """Print the resolved environment as shell exports (starts the embedded database if needed)."""
    env = localenv.resolve_environment(os.environ, {**_devnet_defaults(), "SOROBAN_RPC_URL": args.rpc_url})
    for name, value in env.items():
        if SETTINGS_BY_NAME[name].secret:
            print(f"# {name} is {'set' if value else 'empty'} (secrets are not printed)")
        else:
            print(f"export {name}={value!r}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add the demo's subcommands to the `recon` parser."""
    demo = commands.add_parser("demo", help=cmd_demo.__doc__)
    devnet = commands.add_parser("devnet", help=cmd_devnet.__doc__)
    devnet.add_argument("--port", type=int, default=_default_size("DEVNET_PORT"))
    ui = commands.add_parser("ui", help=cmd_ui.__doc__)
    for command, handler in ((demo, cmd_demo), (devnet, cmd_devnet), (ui, cmd_ui)):
        command.add_argument("--streams", type=int, default=_default_size("DEMO_STREAMS"))
        command.add_argument("--loans", type=int, default=_default_size("DEMO_LOANS"))
        command.add_argument("--markets", type=int, default=_default_size("DEMO_MARKETS"))
        command.add_argument("--users", type=int, default=_default_size("DEMO_USERS"))
        command.set_defaults(handler=handler)
    env = commands.add_parser("env", help=cmd_env.__doc__)
    env.add_argument("--rpc-url", default=f"http://127.0.0.1:{SETTINGS_BY_NAME['DEVNET_PORT'].default}")
    env.set_defaults(handler=cmd_env)
