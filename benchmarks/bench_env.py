"""What the benchmarks share: a fresh database on the embedded PostgreSQL and the
pipeline's resources pointed at it and at a devnet, with no environment read."""

from __future__ import annotations

import sqlalchemy as sa

from recon_demo.identities import DEVNET
from reconciliation_pipeline import localenv
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.metrics import PushgatewayResource
from reconciliation_pipeline.resources import (
    PostgresResource,
    ReconSettingsResource,
    SorobanRpcResource,
    sqlalchemy_url,
)

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
"""Run config that keeps Dagster's per-step debug lines out of the benchmark's output."""
BENCH_RUN_TIME_LIMIT_S = 3600
"""A limit no benchmark run reaches: a timed run must not stop early."""


def fresh_database(name: str) -> tuple[str, sa.Engine]:
    """A new, empty database `name` on the benchmarks' embedded server, with the app's
    reference schema and the recon migrations applied."""
    admin_url = localenv.start_embedded_postgres(localenv.LOCAL_DIR / "bench-pgdata", keep_running=False)
    localenv.drop_database(admin_url, name)
    localenv.ensure_database(admin_url, name)
    database_url = localenv.with_database(admin_url, name)
    engine = sa.create_engine(sqlalchemy_url(database_url))
    sql.apply_reference_app_schema(engine)
    sql.apply_recon_migrations(engine)
    return database_url, engine


def bench_resources(database_url: str, rpc_url: str) -> dict[str, object]:
    """Every resource the benchmarked assets use, bound to the devnet's identities."""
    return {
        "postgres": PostgresResource(database_url=database_url),
        "soroban_rpc": SorobanRpcResource(rpc_url=rpc_url),
        "contracts": DEVNET.contracts_resource(),
        "settings": ReconSettingsResource(run_time_limit_s=BENCH_RUN_TIME_LIMIT_S,
                                          nightly_run_time_limit_s=BENCH_RUN_TIME_LIMIT_S),
        "pushgateway": PushgatewayResource(pushgateway_url=""),
    }
