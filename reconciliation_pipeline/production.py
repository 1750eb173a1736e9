"""`recon migrate`, `recon dagster-home` and `recon run`: the product against your own database and RPC.

None of them starts anything of the demo's: no embedded PostgreSQL, no devnet,
no reference application schema, no seeding. They read the variables of the
README's production section and fail naming any required one that is unset.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.instance.home import DEFAULT_HOME, INSTANCE_FILE, ensure_dagster_home
from reconciliation_pipeline.run_summary import render_run_summary

REQUIRED_VARIABLES = ("DATABASE_URL", "SOROBAN_RPC_URL", "STREAM_CONTRACT_ID", "LENDING_CONTRACT_ID",
                      "AMM_CONTRACT_ID", "STREAK_CONTRACT_ID", "USDC_ISSUER")
"""What has no default outside the local launcher (the "(embedded)" rows of the settings table)."""
RUN_TAG = "recon/launched_by"


class CommandError(RuntimeError):
    """A clear reason the command cannot go on; printed without a traceback, exit status 2."""


def _required(env: Mapping[str, str], names: Sequence[str]) -> None:
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise CommandError(
            f"not set: {', '.join(missing)}. With your own database and RPC these have no default "
            "(README: Pointing it at a real database and RPC)")


def _engine(database_url: str) -> sa.Engine:
    from reconciliation_pipeline.resources import sqlalchemy_url

    try:
        return sa.create_engine(sqlalchemy_url(database_url))
    except ValueError as error:
        raise CommandError(str(error)) from None


# -- recon migrate -----------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the recon schema's migrations to DATABASE_URL (idempotent; never an application table)."""
    _required(os.environ, ("DATABASE_URL",))
    engine = _engine(os.environ["DATABASE_URL"])
    try:
        if args.check:
            pending = sql.pending_migrations(engine)
            print(f"{len(pending)} migration(s) pending" + (f": {', '.join(pending)}" if pending else ""))
            return 1 if pending else 0
        applied = sql.apply_recon_migrations(engine)
    except sa.exc.SQLAlchemyError as error:
        raise CommandError(f"migrating DATABASE_URL failed: {str(getattr(error, 'orig', error)).strip()}") from None
    finally:
        engine.dispose()
    latest = max(sql.available_migrations())
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else
          f"the recon schema is up to date (version {latest:03d})")
    return 0


# -- recon dagster-home --------------------------------------------------------------


def dagster_home(env: Mapping[str, str]) -> Path:
    """DAGSTER_HOME (or the default folder) holding a link to the packaged dagster.yaml."""
    return ensure_dagster_home(Path(env.get("DAGSTER_HOME") or DEFAULT_HOME))


def cmd_dagster_home(args: argparse.Namespace) -> int:
    """Print a Dagster home linking the project's dagster.yaml (made if needed): export DAGSTER_HOME=$(recon dagster-home)."""
    print(ensure_dagster_home(Path(args.folder)) if args.folder else dagster_home(os.environ))
    return 0


# -- recon run -----------------------------------------------------------------------


def production_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables `recon run` adds: DAGSTER_PG_URL from DATABASE_URL when unset (the settings table's
    default) and a DAGSTER_HOME whose dagster.yaml is the project's. Fails naming a missing variable."""
    from reconciliation_pipeline.localenv import dagster_storage_url

    _required(env, REQUIRED_VARIABLES)
    pg_url = env.get("DAGSTER_PG_URL") or dagster_storage_url(env["DATABASE_URL"])
    return {"DAGSTER_PG_URL": pg_url, "DAGSTER_HOME": str(dagster_home(env))}


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def _days(first: date, last: date) -> Iterator[str]:
    if last < first:
        raise CommandError(f"--to {last} is before --from {first}")
    day = first
    while day <= last:
        yield day.isoformat()
        day += timedelta(days=1)


@dataclass(frozen=True)
class RunRequest:
    job_name: str
    partitions: tuple[str | None, ...]
    run_config: dict[str, Any]


def op_config_fields(job: Any) -> dict[str, set[str]]:
    """Each op of the job that takes config, with its config fields."""
    ops = job.run_config_schema.config_type.fields["ops"].config_type
    fields: dict[str, set[str]] = {}
    for op, field in ops.fields.items():
        node = getattr(field.config_type, "fields", {})
        if "config" in node:
            fields[op] = set(getattr(node["config"].config_type, "fields", {}))
    return fields


def run_config_for(job: Any, *, dry_run: bool, apply_repairs: bool, grace_minutes: int | None,
                   config_file: Path | None) -> dict[str, Any]:
    """The run config the flags ask for, on every op of the job that takes it; a config file on top."""
    ops: dict[str, dict[str, Any]] = {}
    for op, fields in op_config_fields(job).items():
        values: dict[str, Any] = {}
        if "dry_run" in fields and dry_run:
            values["dry_run"] = True
        if "apply" in fields and apply_repairs:
            values["apply"] = True
        if "grace_minutes" in fields and grace_minutes is not None:
            values["grace_minutes"] = grace_minutes
        if values:
            ops[op] = {"config": values}
    config: dict[str, Any] = {"ops": ops} if ops else {}
    if config_file is not None:
        try:
            extra = yaml.safe_load(config_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise CommandError(f"--config {config_file}: {error}") from None
        if not isinstance(extra, dict):
            raise CommandError(f"--config {config_file}: a run config is a mapping (ops: ...)")
        config = _merged(config, extra)
    return config


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, Mapping) and isinstance(
            merged.get(key), dict) else value
    return merged


def _partitions(job: Any, args: argparse.Namespace) -> tuple[str | None, ...]:
    partitions_def = job.partitions_def
    asked = args.partition is not None or args.first is not None
    if partitions_def is None:
        if asked:
            raise CommandError(f"{job.name} is not partitioned: it takes no --partition/--from/--to")
        return (None,)
    if args.partition is not None:
        days: list[str] = [args.partition.isoformat()]
    elif args.first is not None:
        days = list(_days(args.first, args.last or args.first))
    else:
        days = [(datetime.now(UTC).date() - timedelta(days=1)).isoformat()]
        print(f"{job.name} is partitioned by day; no --partition given: yesterday (UTC), {days[0]}")
    known = set(partitions_def.get_partition_keys())
    unknown = [d for d in days if d not in known]
    if unknown:
        raise CommandError(f"{job.name} has no partition {', '.join(unknown)} (partitions are the UTC days from "
                           f"{min(known)} to {max(known)})")
    return tuple(days)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a job against DATABASE_URL and SOROBAN_RPC_URL, print the summary `make demo` prints, exit 1 if a
    run failed."""
    if args.last is not None and args.first is None:
        raise CommandError("--to needs --from")
    os.environ.update(production_environment(os.environ))
    engine = _engine(os.environ["DATABASE_URL"])
    try:
        try:
            sql.require_migrated(engine)
        except sql.SchemaNotMigratedError as error:
            raise CommandError(str(error)) from None
        except sa.exc.SQLAlchemyError as error:
            raise CommandError(f"cannot reach DATABASE_URL: {str(getattr(error, 'orig', error)).strip()}") from None

        import dagster as dg

        from reconciliation_pipeline.definitions import defs

        definitions = defs()
        names = sorted(j.name for j in definitions.jobs)
        if args.job not in names:
            raise CommandError(f"no job {args.job!r}; the jobs are: {', '.join(names)}")
        job = definitions.resolve_job_def(args.job)
        request = RunRequest(args.job, _partitions(job, args), run_config_for(
            job, dry_run=args.dry_run, apply_repairs=args.apply_repairs, grace_minutes=args.grace_minutes,
            config_file=args.config))
        run_ids: list[str] = []
        failed = 0
        with dg.DagsterInstance.get() as instance:
            for partition in request.partitions:
                label = f"{args.job}" + (f" for {partition}" if partition else "")
                print(f"running {label} (Dagster home {os.environ['DAGSTER_HOME']})", flush=True)
                result = job.execute_in_process(
                    run_config=request.run_config, instance=instance, partition_key=partition,
                    raise_on_error=False, tags={RUN_TAG: "recon run"})
                run_ids.append(result.run_id)
                failed += not result.success
                print(f"run {result.run_id} {'succeeded' if result.success else 'FAILED'}", flush=True)
        print()
        print(render_run_summary(engine, run_ids, ui_url=os.environ.get("DAGSTER_WEBSERVER_URL")))
        return 1 if failed else 0
    finally:
        engine.dispose()


def register(commands: argparse._SubParsersAction) -> None:
    """`recon migrate`, `recon dagster-home`, `recon run`."""
    migrate = commands.add_parser("migrate", help=cmd_migrate.__doc__)
    migrate.add_argument("--check", action="store_true", help="only list the pending migrations; exit 1 if any")
    migrate.set_defaults(handler=_guarded(cmd_migrate))

    home = commands.add_parser("dagster-home", help=cmd_dagster_home.__doc__)
    home.add_argument("folder", nargs="?", help=f"the folder (default: DAGSTER_HOME, else {DEFAULT_HOME})")
    home.set_defaults(handler=_guarded(cmd_dagster_home))

    run = commands.add_parser("run", help=cmd_run.__doc__, description=cmd_run.__doc__ + (
        " Required: " + ", ".join(REQUIRED_VARIABLES) + f". DAGSTER_PG_URL defaults to DATABASE_URL; DAGSTER_HOME "
        f"to {DEFAULT_HOME} (a link to the project's {INSTANCE_FILE} is made in it)."))
    run.add_argument("job", help="a job name (README: Jobs)")
    days = run.add_mutually_exclusive_group()
    days.add_argument("--partition", type=_day, metavar="DAY", help="the UTC day of a partitioned job "
                      "(default: yesterday)")
    days.add_argument("--from", dest="first", type=_day, metavar="DAY", help="first day of a range, one run a day")
    run.add_argument("--to", dest="last", type=_day, metavar="DAY", help="last day of the range (inclusive)")
    repairs = run.add_mutually_exclusive_group()
    repairs.add_argument("--dry-run", action="store_true", help="plan repairs and record the run as a dry run; "
                         "nothing is applied (without either flag repairs are planned, not applied)")
    repairs.add_argument("--apply-repairs", action="store_true", help="apply the planned repairs (audited)")
    run.add_argument("--grace-minutes", type=int, help="grace period of provisional ids and pending "
                     "transactions (lending; default 30)")
    run.add_argument("--config", type=Path, help="a YAML run config merged over what the flags set")
    run.set_defaults(handler=_guarded(cmd_run))


def _guarded(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except CommandError as error:
            print(f"recon {args.command}: {error}", file=sys.stderr)
            return 2
    return run
