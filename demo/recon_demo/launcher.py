"""The demo's commands of `recon`: `demo`, `ui`, `devnet` and `env` (behind `make demo`, `make ui`, ...).

They provide the zero set-up defaults (embedded PostgreSQL, local devnet), seed
both sides, and run the jobs through a real Dagster instance and its code
location. `register` adds them to the product's `recon` command when this
package is installed.

`make demo` tells a story in two acts (`story.py`): the first run finds the
injected drift, the second (the next `make demo`) finds what happened since:
drift fixed on chain and in the database, repairs applied, a new case.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from recon_demo import DEMO_SQL
from recon_demo.identities import DEVNET
from recon_demo.stack import DemoWebserver, FinishedRun, demo_webserver, free_port
from recon_demo.story import ACT_TAG, STEP_TAG, Act, SecondAct, second_act
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
from reconciliation_pipeline.core.cadences import FREQUENT_JOB, NIGHTLY_JOB
from reconciliation_pipeline.core.execution import EXECUTOR_VARIABLE, IN_PROCESS
from reconciliation_pipeline.resources import sqlalchemy_url
from reconciliation_pipeline.run_summary import render_run_summary
from reconciliation_pipeline.settings import SETTINGS_BY_NAME
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

Say = Callable[[str], None]
PARTITION_TAG = "dagster/partition"
LOCAL_RUNS = {EXECUTOR_VARIABLE: IN_PROCESS}
"""Runs launched locally (make demo, make ui) execute every step in the run's process: seconds, not a process
start-up per step."""
PORT_ATTEMPTS = 50


def _default_size(variable: str) -> int:
    return int(os.environ.get(variable, SETTINGS_BY_NAME[variable].default))


def _sizes(args: argparse.Namespace) -> WorldSizes:
    return WorldSizes(streams=args.streams, loans=args.loans, markets=args.markets, users=args.users)


def _engine(database_url: str) -> sa.Engine:
    return sa.create_engine(sqlalchemy_url(database_url))


@contextmanager
def _connected(database_url: str) -> Iterator[sa.Engine]:
    engine = _engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def prepare_database(database_url: str, progress: Say = say) -> None:
    with _connected(database_url) as engine:
        sql.apply_reference_app_schema(engine)
        applied = sql.apply_recon_migrations(engine)
    progress(f"database ready ({len(applied)} recon migrations applied now)")


def _report_pending_migrations(database_url: str) -> None:
    """Your database is never written by the launcher: no reference schema, no seeding, no migrations."""
    with _connected(database_url) as engine:
        pending = sql.pending_migrations(engine)
    if pending:
        say(f"DATABASE_URL's recon schema lacks {len(pending)} migration(s); runs will refuse to start until "
            "you run `recon migrate` (make migrate)")


def bind_devnet(ledger: DevnetLedger, port: int) -> DevnetServer:
    """A devnet server on `port`, or the next free port after it (0: any free port)."""
    if port == 0:
        return DevnetServer(ledger)
    for candidate in range(port, port + PORT_ATTEMPTS):
        try:
            return DevnetServer(ledger, port=candidate)
        except OSError:
            continue
    raise OSError(f"no free port for the devnet from {port} to {port + PORT_ATTEMPTS - 1}")


def seeded_devnet(world: DemoWorld, database_url: str, port: int = 0,
                  progress: Say = say) -> tuple[DevnetLedger, DevnetServer]:
    ledger = DevnetLedger()
    with _connected(database_url) as engine:
        load_demo_world_into_ledger(ledger, world, progress=progress, engine=engine)
    return ledger, bind_devnet(ledger, port)


# -- the story's acts -------------------------------------------------------------


def next_act(instance: dg.DagsterInstance, engine: sa.Engine) -> Act:
    """Act 2 when the latest demo run is act 1's and its findings are still in recon.*; else act 1."""
    latest = instance.get_runs(filters=dg.RunsFilter(tags={ACT_TAG: [str(a.value) for a in Act]}), limit=1)
    if not latest or latest[0].tags.get(ACT_TAG) != str(Act.FIRST.value):
        return Act.FIRST
    with engine.connect() as connection:
        recorded = connection.execute(DEMO_SQL.query("demo/run_recorded.sql"), {"run_id": latest[0].run_id})
        return Act.SECOND if recorded.scalar_one() else Act.FIRST


def reset_recon(engine: sa.Engine) -> None:
    """Start the story over: the demo database's recon schema emptied and migrated again."""
    with engine.begin() as connection:
        connection.execute(DEMO_SQL.query("demo/drop_recon_schema.sql"))
    sql.apply_recon_migrations(engine)


CATALOGUE_KEY = ["domain", "entity_type", "entity_id", "field", "drift_class", "severity"]


@dataclass(frozen=True)
class CatalogueCheck:
    label: str
    injected: int
    reported: int
    missing: tuple[tuple[str, ...], ...]
    unexpected: tuple[tuple[str, ...], ...]
    origins_known: int = 0
    """Findings whose writing transaction the catalogues know."""
    wrong_origins: tuple[tuple[str, ...], ...] = ()
    """Of those, the ones whose finding names another transaction (or none)."""

    @property
    def holds(self) -> bool:
        return not self.missing and not self.unexpected and not self.wrong_origins

    def lines(self) -> list[str]:
        lines = [f"Catalogue check ({self.label}): {self.injected} findings injected, {self.reported} reported, "
                 f"{len(self.missing)} missing, {len(self.unexpected)} unexpected."]
        for label, rows in (("missing", self.missing), ("unexpected", self.unexpected)):
            lines += [f"  {label}: {' '.join(row)}" for row in sorted(rows)[:10]]
        if self.origins_known:
            lines.append(f"Origin check ({self.label}): {self.origins_known} findings whose writing transaction the "
                         f"catalogues know, {self.origins_known - len(self.wrong_origins)} name it.")
            lines += [f"  wrong origin: {' '.join(row)}" for row in sorted(self.wrong_origins)[:10]]
        return lines


def check_catalogue(engine: sa.Engine, run_ids: list[str], world: DemoWorld, label: str,
                    domains: frozenset[str] | None = None) -> CatalogueCheck:
    """Compare what the runs reported with what the world's catalogues injected (for `domains`, or all)."""
    with engine.connect() as connection:
        found = connection.execute(DEMO_SQL.query("demo/run_findings.sql"), {"run_ids": run_ids}).all()
        origins = connection.execute(DEMO_SQL.query("demo/run_origins.sql"), {"run_ids": run_ids}).all()
    reported = {tuple(map(str, row)) for row in found}
    expected_frame = world.expected_findings()
    if domains is not None:
        expected_frame = expected_frame[expected_frame["domain"].isin(sorted(domains))]
    expected = {tuple(map(str, row)) for row in expected_frame[CATALOGUE_KEY].itertuples(index=False)}
    named = {tuple(map(str, row[:5])): row[5] for row in origins}
    known = expected_frame[expected_frame["origin_tx_hash"].notna()]
    wrong = tuple((row.domain, row.entity_type, row.entity_id, row.field, row.drift_class, str(row.origin_tx_hash))
                  for row in known.itertuples(index=False)
                  if named.get((row.domain, row.entity_type, row.entity_id, row.field, row.drift_class))
                  != row.origin_tx_hash)
    return CatalogueCheck(label, len(expected), len(reported), tuple(expected - reported), tuple(reported - expected),
                          len(known), wrong)


@dataclass(frozen=True)
class ActResult:
    act: Act
    run_ids: list[str]
    runs: list[FinishedRun]
    checks: list[CatalogueCheck]
    summary: str

    @property
    def success(self) -> bool:
        return all(r.success for r in self.runs) and all(c.holds for c in self.checks)


def evaluate_alert_sensor(instance: dg.DagsterInstance) -> str:
    """The drift-incident alert sensor, evaluated once as the daemon would (resources from the environment)."""
    from reconciliation_pipeline.defs.alerting.definitions import drift_incident_alert_sensor
    from reconciliation_pipeline.resources import build_resources

    resources = build_resources()
    with dg.build_sensor_context(instance=instance, resources={
            "postgres": resources["postgres"], "alerting": resources["alerting"]}) as context:
        # The log channel's JSON records are for log shippers; the summary lists what was sent, one
        # readable line per message (recon.alert_messages keeps each payload).
        context.log.setLevel(logging.CRITICAL + 1)
        result = drift_incident_alert_sensor(context)
    skipped = result.skip_reason if isinstance(result, dg.SensorResult) else None
    return skipped.skip_message if skipped is not None and skipped.skip_message else "evaluated"


def run_act(env: Mapping[str, str], sizes: WorldSizes, instance: dg.DagsterInstance, *, ui_url: str | None,
            progress: Say = say, local_dir: Path = localenv.LOCAL_DIR) -> ActResult:
    """Seed the act's world on both sides, run the jobs through the code location, alert once, summarise.

    `env` holds the database and Dagster variables (DATABASE_URL, DAGSTER_PG_URL, DAGSTER_HOME); the
    devnet's URL, contract ids and oracle key are added here. The pipeline's variables are put in
    `os.environ` too, where the alert sensor's resources read them.
    """
    database_url = env["DATABASE_URL"]
    with _connected(database_url) as engine:
        act = next_act(instance, engine)
        if act is Act.FIRST:
            reset_recon(engine)
    now = datetime.now(UTC)
    partition = (now - timedelta(days=1)).strftime("%Y-%m-%d")
    progress(f"act {act.value} of 2: {'the world with its injected drift' if act is Act.FIRST else 'the next day'}"
             f" ({sizes.streams} streams, {sizes.loans} loans, {sizes.markets} markets, {sizes.users} users)")
    world = build_demo_world(sizes, reference_time=now)
    story: SecondAct | None = second_act(world) if act is Act.SECOND else None
    seeded = story.world if story is not None else world
    # The devnet's port is bound first, so the webserver (which takes its time to load the code
    # location) starts while both sides are seeded.
    ledger = DevnetLedger()
    with bind_devnet(ledger, 0) as server:
        resolved = localenv.resolve_environment(
            {**env, **_demo_overrides()}, {"SOROBAN_RPC_URL": server.url, **_devnet_defaults(), **LOCAL_RUNS})
        resolved["SOROBAN_RPC_URL"] = server.url
        os.environ.update(resolved)
        with demo_webserver(resolved, Path(resolved["DAGSTER_HOME"]), instance, local_dir) as web:
            if story is not None:
                progress("since act 1:")
                for change in story.changes:
                    progress(f"  {change.side}: {change.description}")
            with _connected(database_url) as engine:
                write_demo_world_to_db(engine, seeded, progress=progress)
                load_demo_world_into_ledger(ledger, seeded, progress=progress, engine=engine)
            progress(f"devnet (a local Soroban RPC emulator) serving at {server.url}")
            web.wait_until_loaded()
            progress(f"the runs go through a Dagster webserver on the workspace's code location ({web.url}, "
                     "for the demo's length; make ui serves the UI)")
            tags = {ACT_TAG: str(act.value), STEP_TAG: "reconcile", PARTITION_TAG: partition}
            if story is None:
                runs, checks = _act_one_runs(web, tags, progress)
            else:
                runs, checks = _act_two_runs(web, story, tags, database_url, progress)
        for run in runs:
            progress(f"run {run.run_id} ({run.job_name}) {'succeeded' if run.success else run.status.value}")
        progress(f"devnet requests by method: {dict(ledger.request_counts)}")
    progress(f"alert sensor drift_incident_alerts evaluated once: {evaluate_alert_sensor(instance)}")
    run_ids = [run.run_id for run in runs]
    with _connected(database_url) as engine:
        if story is not None:
            checks.append(check_catalogue(engine, run_ids[1:], story.after_repairs(), "act 2's runs"))
        else:
            checks.append(check_catalogue(engine, run_ids, world, "act 1's runs"))
        summary = render_run_summary(engine, run_ids, ui_url=ui_url)
    return ActResult(act, run_ids, runs, checks, summary)


def _without_partition(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k != PARTITION_TAG}


def _act_one_runs(web: DemoWebserver, tags: Mapping[str, str],
                  progress: Say) -> tuple[list[FinishedRun], list[CatalogueCheck]]:
    """The nightly job for yesterday and the every-5-minutes job, side by side (different domains)."""
    progress(f"launching {NIGHTLY_JOB} for {tags[PARTITION_TAG]} and {FREQUENT_JOB}")
    nightly = web.submit(NIGHTLY_JOB, tags=tags)
    return web.follow([nightly, web.submit(FREQUENT_JOB, tags=_without_partition(tags))], progress), []


def _act_two_runs(web: DemoWebserver, story: SecondAct, tags: Mapping[str, str], database_url: str,
                  progress: Say) -> tuple[list[FinishedRun], list[CatalogueCheck]]:
    """The repair domain's run with its planned repairs applied (beside the every-5-minutes job),
    then the nightly job, which finds them repaired."""
    from reconciliation_pipeline.api.launch import launch_plans

    plan = launch_plans()[story.repair_domain]
    progress(f"launching {story.repair_domain} with its planned repairs applied, and {FREQUENT_JOB}")
    repair = web.submit(plan.job_name, run_config=plan.run_config(dry_run=False),
                        asset_selection=plan.selection(dry_run=False), tags={**tags, STEP_TAG: "repair"})
    runs = web.follow([repair, web.submit(FREQUENT_JOB, tags=_without_partition(tags))], progress)
    # Checked now: the nightly run replaces the partition's findings of the repair domain.
    with _connected(database_url) as engine:
        checks = [check_catalogue(engine, [repair], story.world, f"the {story.repair_domain} repair run",
                                  frozenset({story.repair_domain}))]
    progress(f"launching {NIGHTLY_JOB} for {tags[PARTITION_TAG]}")
    runs += web.follow([web.submit(NIGHTLY_JOB, tags=tags)], progress)
    return runs, checks


def cmd_demo(args: argparse.Namespace) -> int:
    """Seed both sides and run the nightly and 5-minute jobs on the embedded defaults (act 1, then act 2)."""
    say("starting the embedded PostgreSQL (the demo never touches DATABASE_URL's server)")
    env = localenv.embedded_database_environment()
    prepare_database(env["DATABASE_URL"])
    os.environ.update(env)
    instance = dg.DagsterInstance.get()
    ui_port = int(os.environ.get("RECON_UI_PORT", SETTINGS_BY_NAME["RECON_UI_PORT"].default))
    result = run_act(env, _sizes(args), instance, ui_url=f"http://127.0.0.1:{ui_port}")
    print("\n" + result.summary)
    for check in result.checks:
        print("\n".join(check.lines()))
    print(_next_steps(result.act))
    return 0 if result.success else 1


def _next_steps(act: Act) -> str:
    again = ("make demo again: act 2, the next day (drift fixed, repairs applied, a new case)" if act is Act.FIRST
             else "make demo again starts the story over")
    return (f"\nThen:\n"
            f"  make psql ARGS='-c \"SELECT * FROM recon.open_drift_amounts\"'   (or make psql for a prompt)\n"
            f"  .venv/bin/recon incidents list\n"
            f"  make ui     (prints its URL; the runs above are in each job's Runs tab)\n"
            f"  {again}")


def _devnet_defaults() -> dict[str, str]:
    """The devnet's contract ids and its oracle key: defaults only where the devnet runs."""
    return {**DEVNET.environment(), **oracle_environment()}


def _demo_overrides() -> dict[str, str]:
    """Tuning variables the user set are honoured; the chain side is always the devnet."""
    keep = ("RPC_MAX_IN_FLIGHT", "RPC_MAX_ATTEMPTS", "RPC_BACKOFF_INITIAL_MS", "RPC_REQUEST_TIMEOUT_MS",
            "RECON_CONFIRM_AFTER_RUNS", "RECON_CONFIRM_GRACE_MINUTES", "RUN_TIME_LIMIT_SECONDS",
            "ODDS_MISMATCH_THRESHOLD", "USDC_BALANCE_TOLERANCE", "RECON_PARTITIONS_START", EXECUTOR_VARIABLE)
    return {k: os.environ[k] for k in keep if k in os.environ}


def latest_act(instance: dg.DagsterInstance) -> Act | None:
    """The act of the latest demo run, if any (what `make ui`'s devnet serves)."""
    latest = instance.get_runs(filters=dg.RunsFilter(tags={ACT_TAG: [str(a.value) for a in Act]}), limit=1)
    return Act(int(latest[0].tags[ACT_TAG])) if latest else None


def served_world(sizes: WorldSizes, act: Act | None) -> DemoWorld:
    """The world as the latest demo act left it (act 1's without a demo yet)."""
    world = build_demo_world(sizes, datetime.now(UTC))
    return second_act(world).world if act is Act.SECOND else world


def cmd_devnet(args: argparse.Namespace) -> int:
    """Run a seeded devnet in the foreground until interrupted."""
    env = localenv.resolve_environment(os.environ, {**DEVNET.environment(), "SOROBAN_RPC_URL": ""})
    _, server = seeded_devnet(build_demo_world(_sizes(args), datetime.now(UTC)), env["DATABASE_URL"], port=args.port)
    server.start()
    say(f"devnet serving at {server.url} (Ctrl-C to stop)")
    for name, value in {**DEVNET.environment(), "SOROBAN_RPC_URL": server.url}.items():
        print(f"export {name}={value!r}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


def _port(flag: int | None, variable: str) -> int:
    return flag if flag is not None else int(os.environ.get(variable, SETTINGS_BY_NAME[variable].default))


# `dagster dev` warns on every start that `dg dev` supersedes it; dg is Dagster's newer CLI, not
# installed here, and runs the same webserver and daemon. Nothing to act on: not shown.
DAGSTER_DEV_WARNINGS = ("-W", "ignore:Function `dev_command` is superseded")


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` against the demo's database and a seeded devnet, on free ports; prints the URL."""
    use_devnet = "SOROBAN_RPC_URL" not in os.environ
    wanted = _port(args.port, "RECON_UI_PORT")
    ui_port = free_port(wanted)
    if ui_port != wanted:
        say(f"port {wanted} is taken (another Dagster UI?): the UI takes {ui_port}")
    # With your RPC nothing of the devnet's applies (resolve_environment drops those defaults then).
    env = localenv.resolve_environment(os.environ, {**_devnet_defaults(), "SOROBAN_RPC_URL": "", **LOCAL_RUNS})
    if "DATABASE_URL" in os.environ:
        _report_pending_migrations(env["DATABASE_URL"])
    else:
        prepare_database(env["DATABASE_URL"])
    server: DevnetServer | None = None
    if use_devnet:
        os.environ["DAGSTER_HOME"], os.environ["DAGSTER_PG_URL"] = env["DAGSTER_HOME"], env["DAGSTER_PG_URL"]
        with _connected(env["DATABASE_URL"]) as engine:
            act = latest_act(dg.DagsterInstance.get())
            world = served_world(_sizes(args), act)
            if "DATABASE_URL" not in os.environ and _demo_tables_empty(engine):
                say("the demo database is empty: seeding the world the devnet serves")
                write_demo_world_to_db(engine, world, progress=say)
        _, server = seeded_devnet(world, env["DATABASE_URL"], port=_port(args.devnet_port, "DEVNET_PORT"))
        env["SOROBAN_RPC_URL"] = server.url
        story = f" (the world as demo act {act.value} left it)" if act is not None else ""
        say(f"devnet serving at {server.url}{story}")
    url = f"http://127.0.0.1:{ui_port}"
    say(f"Dagster UI at {url}  (Ctrl-C stops it and the devnet; make api: DAGSTER_WEBSERVER_URL={url})")
    _stop_on_interrupt_or_term()
    dev = subprocess.Popen(
        [sys.executable, *DAGSTER_DEV_WARNINGS, "-m", "dagster", "dev", "-w",
         str(localenv.PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(ui_port)],
        env={**os.environ, **env},
        # In the instance folder: started elsewhere, dagster dev warns that a dagster.yaml in the
        # current folder (the repository's, which DAGSTER_HOME links to) is not used.
        cwd=env["DAGSTER_HOME"],
        # Its own session: Ctrl-C reaches this process only, which asks dagster dev to stop; it then
        # stops its webserver, daemon and code servers in order instead of each printing a traceback.
        start_new_session=True,
        # Started before any other thread of this process (the devnet's starts below), so resetting
        # the signals a background launch may have ignored is safe: dagster dev must hear SIGINT.
        preexec_fn=_default_signals,
    )
    if server is not None:
        server.start()
    try:
        return _wait_interruptible(dev)
    finally:
        if server is not None:
            server.stop()


def _default_signals() -> None:
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_DFL)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_interrupt_or_term() -> None:
    """Ctrl-C and `kill <pid>` both stop `recon ui` in order, even when started in the background
    (where a shell leaves SIGINT ignored)."""
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _raise_interrupt)


def _wait_interruptible(process: subprocess.Popen[bytes]) -> int:
    """Wait for `process`; Ctrl-C forwards one SIGINT to it and waits for its orderly exit."""
    try:
        return process.wait()
    except KeyboardInterrupt:
        say("stopping the Dagster UI (and the devnet)")
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.terminate()
            return process.wait()


def _demo_tables_empty(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(DEMO_SQL.query("demo/streams_count.sql")).scalar_one() == 0


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
    devnet.add_argument("--port", type=int, default=_default_size("DEVNET_PORT"),
                        help="port on 127.0.0.1, else the next free one (DEVNET_PORT, default 8765)")
    ui = commands.add_parser("ui", help=cmd_ui.__doc__)
    ui.add_argument("--port", type=int, default=None,
                    help="the UI's port on 127.0.0.1, else the next free one (RECON_UI_PORT, default 3000)")
    ui.add_argument("--devnet-port", type=int, default=None,
                    help="the devnet's port on 127.0.0.1, else the next free one (DEVNET_PORT, default 8765)")
    for command, handler in ((demo, cmd_demo), (devnet, cmd_devnet), (ui, cmd_ui)):
        command.add_argument("--streams", type=int, default=_default_size("DEMO_STREAMS"))
        command.add_argument("--loans", type=int, default=_default_size("DEMO_LOANS"))
        command.add_argument("--markets", type=int, default=_default_size("DEMO_MARKETS"))
        command.add_argument("--users", type=int, default=_default_size("DEMO_USERS"))
        command.set_defaults(handler=handler)
    env = commands.add_parser("env", help=cmd_env.__doc__)
    env.add_argument("--rpc-url", default=f"http://127.0.0.1:{SETTINGS_BY_NAME['DEVNET_PORT'].default}")
    env.set_defaults(handler=cmd_env)
