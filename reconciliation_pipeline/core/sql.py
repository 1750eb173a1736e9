"""SQL files and migrations.

Every statement the pipeline runs lives in a `.sql` file shipped inside the
package (`reconciliation_pipeline/sql/`) and read with `importlib.resources`, so
an installed wheel finds its queries without a source tree. Values are bound by
the driver, never formatted into the text. A path names a file inside its
folder: absolute paths, `..` and anything but `.sql` are refused, so no stored
value or setting can make the pipeline run a file from elsewhere.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Any constant works; it only has to be the same for every process migrating.
_MIGRATION_LOCK_ID = 7_271_001
# The first key of the two-key advisory locks on a domain's shared rows (an int4; the second is the domain's hash).
_DOMAIN_LOCK_CLASS = 7_271_002


class SqlPathError(ValueError):
    """A SQL path that does not name a `.sql` file inside its folder."""


@dataclass(frozen=True)
class SqlFolder:
    """A folder of `.sql` files inside an importable package."""

    package: str
    folder: str = "sql"

    @property
    def root(self) -> Traversable:
        return resources.files(self.package).joinpath(self.folder)

    def file(self, relative_path: str) -> Traversable:
        """The file `relative_path` names inside the folder; refuses anything that would leave it."""
        path = PurePosixPath(relative_path)
        if path.is_absolute() or not path.parts or path.suffix != ".sql" or not all(
            _SAFE_PART.match(part) and part not in (".", "..") for part in path.parts
        ):
            raise SqlPathError(f"not a .sql file inside {self.package}/{self.folder}: {relative_path!r}")
        return self.root.joinpath(*path.parts)

    def read(self, relative_path: str) -> str:
        return _read(self, relative_path)

    def query(self, relative_path: str) -> sa.TextClause:
        """A bound-parameter statement from the folder."""
        return sa.text(self.read(relative_path))

    def files(self, relative_folder: str) -> list[Traversable]:
        """The `.sql` files directly inside a subfolder, sorted by name."""
        folder = self.root.joinpath(*PurePosixPath(relative_folder).parts)
        return sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)


@functools.cache
def _read(folder: SqlFolder, relative_path: str) -> str:
    file = folder.file(relative_path)
    if not file.is_file():
        raise FileNotFoundError(f"SQL file not found: {folder.package}/{folder.folder}/{relative_path}")
    return file.read_text()


PIPELINE_SQL = SqlFolder("reconciliation_pipeline")
"""The product's queries: recon migrations and queries, snapshots, repairs, the reference app schema."""


def read_sql(relative_path: str) -> str:
    """The text of one of the pipeline's SQL files; a missing or outside path is a clear error."""
    return PIPELINE_SQL.read(relative_path)


def query(relative_path: str) -> sa.TextClause:
    """A bound-parameter statement from one of the pipeline's SQL files."""
    return PIPELINE_SQL.query(relative_path)


def run_script(connection: Connection, script: str) -> None:
    """Several statements without parameters, in one simple-protocol call of the driver."""
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
        run_script(connection, read_sql("recon/bootstrap.sql"))
        done = set(connection.execute(query("recon/queries/applied_migrations.sql")).scalars())
        for version, migration in sorted(_migration_files().items()):
            if version in done:
                continue
            run_script(connection, migration.read_text())
            connection.execute(query("recon/queries/record_migration.sql"),
                               {"version": version, "name": migration.name})
            applied.append(migration.name)
    return applied


def lock_domain_writes(connection: Connection, domain: str) -> None:
    """Wait until no other transaction writes `domain`'s shared rows, and hold that until this one ends.

    Runs of one domain at once (two days of a backfill, the nightly run and the every-5-minutes
    sweep) fold their findings into the same incidents, coverage and repair rows. Taking turns,
    each sees what the one before committed, as if the runs had followed each other: no
    unique-key error on an entity both first saw, no deadlock, no resolution of an incident the
    other had not committed yet. Only these short transactions wait, not the runs.
    """
    connection.execute(query("recon/queries/domain_writes_lock.sql"),
                       {"lock_class": _DOMAIN_LOCK_CLASS, "domain": domain})


class SchemaNotMigratedError(RuntimeError):
    """The `recon` schema lacks migrations this release needs."""


def _migration_files() -> dict[int, Traversable]:
    versions: dict[int, Traversable] = {}
    for migration in PIPELINE_SQL.files("recon/migrations"):
        match = _MIGRATION_NAME.match(migration.name)
        if match is None:
            raise ValueError(f"Migration file name must look like 001_name.sql: {migration.name}")
        versions[int(match.group(1))] = migration
    return versions


def available_migrations() -> dict[int, str]:
    """Every migration this release ships, by version."""
    return {version: migration.name for version, migration in _migration_files().items()}


def pending_migrations(engine: Engine) -> list[str]:
    """The migrations this release ships that the database has not applied (all of them on a
    database without the `recon` schema). Reads only: nothing is created."""
    with engine.connect() as connection:
        if not connection.execute(query("recon/queries/schema_migrations_present.sql")).scalar_one():
            done: set[int] = set()
        else:
            done = set(connection.execute(query("recon/queries/applied_migrations.sql")).scalars())
    return [name for version, name in sorted(available_migrations().items()) if version not in done]


def require_migrated(engine: Engine) -> None:
    """Fail, naming the command that fixes it, when the `recon` schema is behind this release."""
    pending = pending_migrations(engine)
    if pending:
        raise SchemaNotMigratedError(
            f"the recon schema of DATABASE_URL lacks {len(pending)} migration(s) this release needs "
            f"({', '.join(pending)}): run `recon migrate` (or `make migrate`) against it first"
        )


def apply_reference_app_schema(engine: Engine) -> None:
    """Create the reference application tables (demo and tests; idempotent)."""
    with engine.begin() as connection:
        run_script(connection, read_sql("app/reference_schema.sql"))
