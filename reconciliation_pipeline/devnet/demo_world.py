"""The whole demo world: every domain's world, written to both sides together.

One place for the launcher (`make demo`, `make ui`, `make devnet`) to build,
seed and serve the same deterministic world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from reconciliation_pipeline.devnet.balances_world import (
    BalancesWorld,
    build_balances_world,
)
from reconciliation_pipeline.devnet.ledger import DevnetLedger
from reconciliation_pipeline.devnet.lending_seed import (
    load_lending_into_ledger,
    write_lending_to_db,
)
from reconciliation_pipeline.devnet.lending_world import (
    LendingWorld,
    build_lending_world,
)
from reconciliation_pipeline.devnet.markets_seed import (
    load_balances_into_ledger,
    load_markets_into_ledger,
    mirror_other_holders_into_ledger,
    write_balances_to_db,
    write_markets_to_db,
)
from reconciliation_pipeline.devnet.markets_world import (
    MarketsWorld,
    build_markets_world,
)
from reconciliation_pipeline.devnet.seed import (
    load_streams_into_ledger,
    write_streams_to_db,
)
from reconciliation_pipeline.devnet.streams_world import (
    StreamsWorld,
    build_streams_world,
)
from reconciliation_pipeline.devnet.transactions import TransactionStore

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WorldSizes:
    streams: int
    loans: int
    markets: int
    users: int


@dataclass
class DemoWorld:
    streams: StreamsWorld
    lending: LendingWorld
    markets: MarketsWorld
    balances: BalancesWorld

    def expected_findings(self) -> pd.DataFrame:
        """Every finding the injected catalogues call for, with its domain."""
        return pd.concat(
            [
                world.expected_findings().assign(domain=domain)
                for domain, world in (("streams", self.streams), ("lending", self.lending),
                                      ("markets", self.markets), ("balances", self.balances))
            ],
            ignore_index=True,
        )


def build_demo_world(sizes: WorldSizes, reference_time: datetime) -> DemoWorld:
    return DemoWorld(
        streams=build_streams_world(sizes.streams, reference_time=reference_time),
        lending=build_lending_world(sizes.loans, reference_time=reference_time),
        markets=build_markets_world(sizes.markets),
        balances=build_balances_world(sizes.users),
    )


def write_demo_world_to_db(engine: Engine, world: DemoWorld, progress: Progress) -> None:
    """Replace the demo tables' rows with the world's database side."""
    write_streams_to_db(engine, world.streams, progress=progress)
    write_lending_to_db(engine, world.lending, progress=progress)
    progress(f"database: {write_markets_to_db(engine, world.markets)} markets written")
    progress(f"database: {write_balances_to_db(engine, world.balances)} users with balances written")


def load_demo_world_into_ledger(
    ledger: DevnetLedger, world: DemoWorld, progress: Progress, engine: Engine
) -> TransactionStore:
    """Put the world's chain side into the devnet; returns its transaction store.

    `engine` is the database the world was written to: users other domains
    seeded with wallets get matching USDC holdings, so only the balances
    catalogue shows up as balance drift. The balances world's burst of RPC
    failures (a poisoned batch) is switched on last.
    """
    transactions = TransactionStore(ledger)
    load_streams_into_ledger(ledger, world.streams, progress=progress)
    load_lending_into_ledger(ledger, transactions, world.lending, progress=progress)
    progress(f"devnet: {load_markets_into_ledger(ledger, world.markets)} market entries")
    progress(f"devnet: {load_balances_into_ledger(ledger, world.balances)} USDC holdings")
    mirror_other_holders_into_ledger(engine, ledger, world.balances)
    ledger.faults = world.balances.rpc_burst
    return transactions
