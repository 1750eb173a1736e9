"""The demo world on both sides, reconciled the way `make demo` does it: the real Definitions,
resources bound from environment variables, the nightly and the every-5-minutes jobs.

Shared by the tests that need every domain's catalogue at once (alert routing, the
analyst views, the API): a small world that still holds every injected drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from recon_demo.identities import DEVNET
from recon_demo.world import (
    DemoWorld,
    WorldSizes,
    build_demo_world,
    load_demo_world_into_ledger,
    write_demo_world_to_db,
)
from recon_demo.worlds.streaks import oracle_environment
from reconciliation_pipeline.core.cadences import FREQUENT_JOB, NIGHTLY_JOB
from reconciliation_pipeline.settings import ENV_SETTINGS
from soroban_devnet.ledger import DevnetLedger

SMALL = WorldSizes(streams=40, loans=20, markets=20, users=260)


def pipeline_environment(monkeypatch: pytest.MonkeyPatch, database_url: str, rpc_url: str,
                         **overrides: str) -> dict[str, str]:
    """Every variable the pipeline reads, set as a deployment would set them."""
    values = {s.name: s.default for s in ENV_SETTINGS if s.default != "(embedded)"}
    values.update(DEVNET.environment())
    values.update(oracle_environment())
    values.update(DATABASE_URL=database_url, SOROBAN_RPC_URL=rpc_url, RPC_BACKOFF_INITIAL_MS="10", **overrides)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def seed_demo_world(engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime,
                    sizes: WorldSizes = SMALL) -> DemoWorld:
    world = build_demo_world(sizes, reference_time=reference_time)
    write_demo_world_to_db(engine, world, progress=lambda _: None)
    load_demo_world_into_ledger(ledger, world, progress=lambda _: None, engine=engine)
    return world


@dataclass(frozen=True)
class DemoRuns:
    nightly: dg.ExecuteInProcessResult
    frequent: dg.ExecuteInProcessResult

    @property
    def run_ids(self) -> list[str]:
        return [self.nightly.run_id, self.frequent.run_id]


def run_demo_jobs(instance: dg.DagsterInstance, reference_time: datetime) -> DemoRuns:
    """The nightly job for yesterday, then the every-5-minutes job, from the environment."""
    from reconciliation_pipeline.definitions import defs as load_defs

    defs = load_defs()
    partition = (reference_time - timedelta(days=1)).strftime("%Y-%m-%d")
    nightly = defs.resolve_job_def(NIGHTLY_JOB).execute_in_process(instance=instance, partition_key=partition)
    frequent = defs.resolve_job_def(FREQUENT_JOB).execute_in_process(instance=instance)
    return DemoRuns(nightly, frequent)


def run_frequent_job(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    from reconciliation_pipeline.definitions import defs as load_defs

    return load_defs().resolve_job_def(FREQUENT_JOB).execute_in_process(instance=instance)
