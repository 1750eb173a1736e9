"""`recon api`: serve the API for the apps (behind `make api`).

It reads its settings from the environment: the tokens (`RECON_API_READ_TOKENS`,
`RECON_API_LAUNCH_TOKENS`), the Dagster webserver that launches runs
(`DAGSTER_WEBSERVER_URL`), the database (`DATABASE_URL`, else the demo's
embedded one) and where to listen (`RECON_API_HOST`, `RECON_API_PORT`).
FastAPI and uvicorn are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from reconciliation_pipeline.settings import SETTINGS_BY_NAME

if TYPE_CHECKING:
    from reconciliation_pipeline.api.app import ApiSettings


def _setting(env: Mapping[str, str], name: str) -> str:
    return env.get(name, SETTINGS_BY_NAME[name].default)


def settings_from_environment(env: Mapping[str, str]) -> ApiSettings:
    """The API's settings from environment variables; a bad token setting is a clear error."""
    from reconciliation_pipeline.api.app import ApiSettings
    from reconciliation_pipeline.api.auth import Tokens

    database_url = env.get("DATABASE_URL")
    if not database_url:
        from reconciliation_pipeline import localenv

        database_url = localenv.embedded_database_environment()["DATABASE_URL"]
    return ApiSettings(
        database_url=database_url,
        dagster_webserver_url=_setting(env, "DAGSTER_WEBSERVER_URL"),
        tokens=Tokens.from_variables(env.get("RECON_API_READ_TOKENS", ""), env.get("RECON_API_LAUNCH_TOKENS", "")),
    )


def cmd_api(args: argparse.Namespace) -> int:
    """Serve the API over HTTP until interrupted."""
    import uvicorn

    from reconciliation_pipeline.api.app import create_app
    from reconciliation_pipeline.api.auth import TokenConfigError

    try:
        settings = settings_from_environment(os.environ)
    except TokenConfigError as error:
        print(f"recon api: {error}", file=sys.stderr)
        return 2
    host = args.host or _setting(os.environ, "RECON_API_HOST")
    port = args.port or int(_setting(os.environ, "RECON_API_PORT"))
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    api = commands.add_parser("api", help=cmd_api.__doc__)
    api.add_argument("--host", help="default RECON_API_HOST")
    api.add_argument("--port", type=int, help="default RECON_API_PORT")
    api.set_defaults(handler=cmd_api)
