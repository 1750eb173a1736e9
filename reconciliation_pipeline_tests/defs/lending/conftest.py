"""Lending fixtures: the devnet with `getLedgers` and `getTransaction`, a seeded lending
world on both sides, and in-process runs of the real lending assets."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.worlds.lending import LendingWorld, build_lending_world, load_lending_into_ledger, write_lending_to_db
from reconciliation_pipeline.defs.lending.definitions import LENDING
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.ledgers_method import register_get_ledgers
from soroban_devnet.server import DevnetServer
from soroban_devnet.transactions import TransactionStore

WORLD_LOANS = 60
FINDING_KEY = ["entity_type", "entity_id", "field", "drift_class", "severity", "db_value", "chain_value"]
LENDING_ASSETS = LENDING.assets("nightly")


@pytest.fixture
def transactions(ledger: DevnetLedger) -> TransactionStore:
    register_get_ledgers(ledger)
    return TransactionStore(ledger)


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger, transactions: TransactionStore,
          reference_time: datetime) -> LendingWorld:
    world = build_lending_world(WORLD_LOANS, reference_time=reference_time)
    write_lending_to_db(engine, world)
    load_lending_into_ledger(ledger, transactions, world)
    return world


def repair_config(apply: bool, dry_run: bool, *names: str) -> dict[str, object]:
    return {"ops": {name: {"config": {"apply": apply, "dry_run": dry_run}} for name in names}}


def run_nightly(database_url: str, devnet: DevnetServer, partition: str, *, apply: bool = False,
                dry_run: bool = False, raise_on_error: bool = True, **rpc: int) -> dg.ExecuteInProcessResult:
    """The `lending` group for one day, as the nightly job runs it."""
    return dg.materialize(
        LENDING_ASSETS,
        resources=make_resources(database_url, devnet.url, **rpc),
        partition_key=partition,
        run_config=repair_config(apply, dry_run, "lending_repairs"),
        raise_on_error=raise_on_error,
    )


def run_sweep(database_url: str, devnet: DevnetServer, *, apply: bool = False) -> dg.ExecuteInProcessResult:
    """The 5-minute sweep's selection."""
    return dg.materialize(
        LENDING.assets("sweep"),
        resources=make_resources(database_url, devnet.url),
        run_config=repair_config(apply, False, "lending_sweep_repairs"),
    )


def findings_of(engine: sa.Engine, run_id: str | None = None, partition: str | None = None) -> pd.DataFrame:
    query = "SELECT * FROM recon.discrepancies WHERE domain = 'lending'"
    params: dict[str, str] = {}
    if run_id is not None:
        query += " AND run_id = :run_id"
        params["run_id"] = run_id
    if partition is not None:
        query += " AND partition_key = :partition"
        params["partition"] = partition
    with engine.connect() as connection:
        return pd.read_sql(sa.text(query), connection, params=params)


def as_set(frame: pd.DataFrame) -> set[tuple]:
    rows = frame[FINDING_KEY].astype(object).where(frame[FINDING_KEY].notna(), None)
    return set(map(tuple, rows.itertuples(index=False)))


def table(engine: sa.Engine, query: str, **params: object) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text(query), connection, params=params)
