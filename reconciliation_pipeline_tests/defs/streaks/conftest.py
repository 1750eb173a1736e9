"""Fixtures of the streaks tests: a devnet whose ledgers close on a fast clock (so
submitted syncs apply while the pipeline polls), the streaks world on both sides,
and the resources a streaks run needs."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from recon_demo.identities import DEVNET
from recon_demo.worlds.streaks import (
    StreaksWorld,
    build_streaks_world,
    load_streaks_into_ledger,
    oracle_environment,
    write_streaks_to_db,
)
from reconciliation_pipeline.defs.streaks.oracle import StreakOracleResource
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.streaks_contract import StreakContract
from soroban_devnet.transactions import TransactionStore

LEDGER_CLOSE_S = 0.2
CLEAN_PLAYERS = 250
"""With the scenarios, more than 200 wallets: chain reads take two batches."""


@pytest.fixture
def ledger() -> DevnetLedger:
    """Ledgers close every 0.2 s, as a network's do every 5 s."""
    return DevnetLedger(ledger_close_seconds=LEDGER_CLOSE_S)


@pytest.fixture
def store(ledger: DevnetLedger) -> TransactionStore:
    return TransactionStore(ledger)


@pytest.fixture
def world(reference_time: datetime) -> StreaksWorld:
    return build_streaks_world(reference_time=reference_time, n_clean=CLEAN_PLAYERS)


@pytest.fixture
def contract(world: StreaksWorld, engine: sa.Engine, ledger: DevnetLedger, store: TransactionStore) -> StreakContract:
    write_streaks_to_db(engine, world)
    return load_streaks_into_ledger(ledger, store, world)


def streak_resources(database_url: str, rpc_url: str, *, enabled: bool = False,
                     secret: str | None = None, **oracle: int) -> dict[str, object]:
    """Every resource a streaks run needs, the oracle's key only when given."""
    settings = {"poll_interval_ms": 50, "poll_timeout_s": 10, "try_again_backoff_ms": 100, **oracle}
    return {
        **make_resources(database_url, rpc_url, backoff_initial_ms=10, settings={"streak_qualifying_minutes": 30}),
        "streak_oracle": StreakOracleResource(
            rpc_url=rpc_url,
            network_passphrase=DEVNET.network_passphrase,
            sync_enabled="true" if enabled else "false",
            oracle_secret_key=oracle_environment()["ORACLE_SECRET_KEY"] if secret is None else secret,
            **settings,
        ),
    }
