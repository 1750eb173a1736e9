"""Where the Dagster instance configuration lives, and a guard against the silent SQLite fallback.

The instance file (`dagster.yaml`: runs, event logs and schedules in PostgreSQL,
the monitored run launcher) ships inside this package. A Dagster home is a folder
holding a link to it: `recon dagster-home` makes one (and `recon run` and the
launcher do so themselves), so nothing is copied and an upgrade applies.
Dagster falls back to SQLite files under a home without a `dagster.yaml`; a run
that would do so while `DAGSTER_PG_URL` is set fails instead (`check_instance_storage`).
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

import dagster as dg
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

INSTANCE_FILE = "dagster.yaml"
DEFAULT_HOME = Path("~/.local/state/recon/dagster_home")
"""Where `recon run` and `recon dagster-home` keep the Dagster home when DAGSTER_HOME is unset."""


class InstanceConfigError(dg.DagsterInvariantViolationError):
    """The Dagster instance is not the one `DAGSTER_PG_URL` asks for."""


def packaged_instance_file() -> Path:
    """The shipped `dagster.yaml` (a real file: the package is installed, not zipped)."""
    with as_file(files("reconciliation_pipeline.instance") / INSTANCE_FILE) as path:
        return Path(path)


def ensure_dagster_home(folder: Path) -> Path:
    """`folder` as a Dagster home whose `dagster.yaml` links to the packaged one.

    A `dagster.yaml` that is a file of its own is the operator's and is left alone;
    a link is pointed at this installation's file."""
    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / INSTANCE_FILE
    target = packaged_instance_file()
    if link.is_symlink():
        if link.resolve() != target.resolve():
            link.unlink()
            link.symlink_to(target)
    elif not link.exists():
        link.symlink_to(target)
    return folder


def check_instance_storage(instance: dg.DagsterInstance) -> None:
    """Fail when `DAGSTER_PG_URL` is set but this instance keeps its runs in SQLite files: its
    home has no `dagster.yaml` naming PostgreSQL, and the runs would go somewhere nobody looks."""
    if dg.EnvVar("DAGSTER_PG_URL").get_value() and isinstance(instance.run_storage, SqliteRunStorage):
        raise InstanceConfigError(
            f"DAGSTER_PG_URL is set, but the Dagster instance at DAGSTER_HOME={instance.root_directory} has no "
            f"{INSTANCE_FILE} using it and would store this run in SQLite there. Point DAGSTER_HOME at the folder "
            "`recon dagster-home` prints (it links the project's dagster.yaml), or run the job with `recon run`."
        )
