"""SQL files and migrations.

Every statement the pipeline runs lives in a `.sql` file under the repository's
`sql/` folder; values are bound by the driver, never formatted into the text.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
RECON_MIGRATIONS_DIR = SQL_DIR / "recon" / "migrations"
APP_REFERENCE_SCHEMA = SQL_DIR / "app" / "reference_schema.sql"

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same for every process migrating.
_MIGRATION_LOCK_ID = 7_271_001


@functools.cache
def read_sql(relative_path: str) -> str:
    """The text of `sql/<relative_path>`; a missing file is a clear error."""
    path = SQL_DIR / relative_path
    if not path.is_file():
        raise FileNotFoundError(f"SQL file not found: {path}")
    return path.read_text()


def query(relative_path: str) -> sa.TextClause:
    """A bound-parameter statement from `sql/<relative_path>`."""
    return sa.text(read_sql(relative_path))


def _run_script(connection: Connection, script: str) -> None:
    # Scripts hold several statements and no parameters: the driver's cursor
    # runs them in one simple-protocol call.
    cursor = connection.connection.driver_connection.cursor()
    cursor.execute(script)


def apply_recon_migrations(engine: Engine) -> list[str]:
    """Apply the versioned `recon` migrations not yet applied; returns their names.

    Idempotent and safe to call from several processes at once: an advisory
    lock serialises them and `recon.schema_migrations` records what ran.
    """
    applied: list[str] = []
    with engine.begin() as connection:
        connection.execute(query("recon/queries/migration_lock.sql"), {"lock_id": _MIGRATION_LOCK_ID})
        _run_script(connection, read_sql("recon/bootstrap.sql"))
        done = set(connection.execute(query("recon/queries/applied_migrations.sql")).scalars())
        for path in sorted(RECON_MIGRATIONS_DIR.glob("*.sql")):
            match = _MIGRATION_NAME.match(path.name)
            if match is None:
                raise ValueError(f"Migration file name must look like 001_name.sql: {path.name}")
            version = int(match.group(1))
            if version in done:
                continue
            _run_script(connection, path.read_text())
            connection.execute(query("recon/queries/record_migration.sql"), {"version": version, "name": path.name})
            applied.append(path.name)
    return applied


def apply_reference_app_schema(engine: Engine) -> None:
    """Create the reference application tables (demo and tests; idempotent)."""
    with engine.begin() as connection:
        _run_script(connection, APP_REFERENCE_SCHEMA.read_text())
