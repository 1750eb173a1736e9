"""The shipped instance's PostgreSQL storage keeps its connections: a run's hundreds of events do
not each open one (dagster-postgres's default outside the webserver), and disposing of the
instance closes them. Real PostgreSQL, the packaged dagster.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from reconciliation_pipeline import localenv
from reconciliation_pipeline.instance.storage import (
    PooledPostgresEventLogStorage,
    PooledPostgresRunStorage,
    PooledPostgresScheduleStorage,
)


@dg.asset
def first() -> int:
    return 1


@dg.asset
def second(first: int) -> int:
    return first + 1


@dg.asset
def third(second: int) -> int:
    return second + 1


@dataclass
class Connections:
    """DBAPI connections opened in this process while the test ran, and which of them closed.

    Held by identity: another test's engine, collected now, closes connections this one never
    opened, so counting closes alone would not say whether this instance closed its own."""

    opened: list[object] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)

    def still_open(self) -> int:
        return sum(id(connection) not in self.closed for connection in self.opened)


@pytest.fixture
def connections() -> Iterator[Connections]:
    """Every pool's connects and closes, whatever engine they belong to."""
    seen = Connections()

    def opened(dbapi_connection: object, _record: object) -> None:
        seen.opened.append(dbapi_connection)  # kept alive, so its id stays its own

    def closed(dbapi_connection: object, _record: object) -> None:
        seen.closed.add(id(dbapi_connection))

    sa.event.listen(sa.pool.Pool, "connect", opened)
    sa.event.listen(sa.pool.Pool, "close", closed)
    yield seen
    sa.event.remove(sa.pool.Pool, "connect", opened)
    sa.event.remove(sa.pool.Pool, "close", closed)


def test_a_run_logs_its_events_over_a_few_kept_connections(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connections: Connections,
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(localenv.prepare_dagster_home(tmp_path / "dagster_home")))
    monkeypatch.setenv("DAGSTER_PG_URL", localenv.dagster_storage_url(database_url))
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PooledPostgresRunStorage)
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PooledPostgresScheduleStorage)
        before = len(connections.opened)
        result = dg.materialize([first, second, third], instance=instance)
        assert result.success
        events = len(instance.all_logs(result.run_id))
        opened = len(connections.opened) - before
        # A connection per statement opened more than one per event (dagster-postgres's NullPool).
        assert events >= 25 and opened <= 6, (events, opened)
        # Subprocesses (run workers, step processes) rebuild the same pooled storage from the ref.
        assert instance.get_ref().event_storage_data.class_name == "PooledPostgresEventLogStorage"
    assert connections.opened and connections.still_open() == 0
