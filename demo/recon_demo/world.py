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

from recon_demo.catalogue import ExpectedFinding, expected_findings
from recon_demo.worlds.balances import (
    BalancesWorld,
    build_balances_world,
    load_balances_into_ledger,
    mirror_other_holders_into_ledger,
    write_balances_to_db,
)
from recon_demo.worlds.lending import LendingWorld, build_lending_world, load_lending_into_ledger, write_lending_to_db
from recon_demo.worlds.markets import MarketsWorld, build_markets_world, load_markets_into_ledger, write_markets_to_db
from recon_demo.worlds.streaks import (
    INVALID_WALLET,
    StreaksWorld,
    build_streaks_world,
    load_streaks_into_ledger,
    write_streaks_to_db,
)
from recon_demo.worlds.streams import StreamsWorld, build_streams_world, load_streams_into_ledger, write_streams_to_db
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.transactions import TransactionStore

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
    streaks: StreaksWorld

    def expected_findings(self) -> pd.DataFrame:
        """Every finding the injected catalogues call for, with its domain."""
        # Every user with a wallet is balance-checked, so the streaks world's
        # invalid wallet is an INVALID_ADDRESS for balances too.
        invalid_wallet_user = self.streaks.by_name("invalid_wallet").user_id
        cross_domain = pd.DataFrame([vars(ExpectedFinding(
            entity_type="user", entity_id=f"user_{invalid_wallet_user}", field="wallet_address",
            drift_class="INVALID_ADDRESS", severity="WARN", db_value=INVALID_WALLET, chain_value=None,
        ))])
        return pd.concat(
            [
                self.streams.expected_findings().assign(domain="streams"),
                self.lending.expected_findings().assign(domain="lending"),
                self.markets.expected_findings().assign(domain="markets"),
                self.balances.expected_findings(with_burst=False).assign(domain="balances"),
                cross_domain.assign(domain="balances"),
                expected_findings(self.streaks.catalogue).assign(domain="streaks"),
            ],
            ignore_index=True,
        )


def build_demo_world(sizes: WorldSizes, reference_time: datetime) -> DemoWorld:
    return DemoWorld(
        streams=build_streams_world(sizes.streams, reference_time=reference_time),
        lending=build_lending_world(sizes.loans, reference_time=reference_time),
        markets=build_markets_world(sizes.markets),
        balances=build_balances_world(sizes.users),
        streaks=build_streaks_world(reference_time=reference_time),
    )


def write_demo_world_to_db(engine: Engine, world: DemoWorld, progress: Progress) -> None:
    """Replace the demo tables' rows with the world's database side."""
    write_streams_to_db(engine, world.streams, progress=progress)
    write_lending_to_db(engine, world.lending, progress=progress)
    progress(f"database: {write_markets_to_db(engine, world.markets)} markets written")
    progress(f"database: {write_balances_to_db(engine, world.balances)} users with balances written")
    write_streaks_to_db(engine, world.streaks, progress=progress)


def load_demo_world_into_ledger(
    ledger: DevnetLedger, world: DemoWorld, progress: Progress, engine: Engine
) -> TransactionStore:
    """Put the world's chain side into the devnet; returns its transaction store.

    `engine` is the database the world was written to: users other domains
    seeded with wallets get matching USDC holdings, so only the balances
    catalogue shows up as balance drift. The balances world's burst of RPC
    failures is left off here: its poisoned batch depends on which users share
    it, and the tests exercise it on the balances world alone.
    """
    transactions = TransactionStore(ledger)
    load_streams_into_ledger(ledger, world.streams, progress=progress)
    load_lending_into_ledger(ledger, transactions, world.lending, progress=progress)
    progress(f"devnet: {load_markets_into_ledger(ledger, world.markets)} market entries")
    progress(f"devnet: {load_balances_into_ledger(ledger, world.balances)} USDC holdings")
    load_streaks_into_ledger(ledger, transactions, world.streaks, progress=progress)
    mirror_other_holders_into_ledger(engine, ledger, world.balances)
    return transactions
