"""Dagster's PostgreSQL storage, keeping its connections open instead of opening one per statement.

Outside the webserver, dagster-postgres opens a new connection for every statement (a `NullPool`,
so that many short-lived instances never pile connections up). A run writes a few hundred events
(each step's start, inputs, outputs, materializations and checks), so one nightly run opened 645
connections, about 5 ms each on the embedded server and more under load: a quarter of the run.
These classes give each storage the pooled engine dagster-webserver gives its own (one connection
kept, more opened while threads need them, none kept past an hour), and close it with the instance.
The instance file (`dagster.yaml`) names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

POOL_RECYCLE_S = 3600
MAX_OVERFLOW = 20
"""Connections opened beyond the kept one while threads (the daemon's) need them at once."""
NO_STATEMENT_TIMEOUT = 0
"""As without the pool: a long query of a run or the daemon is not cut short."""


def _arguments(inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments dagster-postgres reads from a storage's config."""
    return {
        "inst_data": inst_data,
        "postgres_url": pg_url_from_config(config_value),
        "should_autocreate_tables": config_value.get("should_autocreate_tables", True),
        "token_provider": get_token_provider_from_config(config_value),
    }


class _Pooled:
    """Pools the connections of the dagster-postgres storage it is mixed into."""

    _engine: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optimize_for_webserver(  # type: ignore[attr-defined]
            statement_timeout=NO_STATEMENT_TIMEOUT, pool_recycle=POOL_RECYCLE_S, max_overflow=MAX_OVERFLOW)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]) -> Any:
        # dagster-postgres's own builds its base class whatever the subclass: build this one.
        return cls(**_arguments(inst_data, config_value))

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engine.dispose()


class PooledPostgresRunStorage(_Pooled, PostgresRunStorage):
    """Runs, with pooled connections."""


class PooledPostgresEventLogStorage(_Pooled, PostgresEventLogStorage):
    """Event logs, with pooled connections."""


class PooledPostgresScheduleStorage(_Pooled, PostgresScheduleStorage):
    """Schedules and sensors' ticks, with pooled connections."""
