"""The whole demo world: every domain's world, written to both sides together.

One place for the launcher (`make demo`, `make ui`, `make devnet`) to build,
seed and serve the same deterministic world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine

from reconciliation_pipeline.devnet.ledger import DevnetLedger
from reconciliation_pipeline.devnet.lending_seed import load_lending_into_ledger, write_lending_to_db
from reconciliation_pipeline.devnet.lending_world import LendingWorld, build_lending_world
from reconciliation_pipeline.devnet.seed import load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.devnet.streams_world import StreamsWorld, build_streams_world
from reconciliation_pipeline.devnet.transactions import TransactionStore

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WorldSizes:
    streams: int
    loans: int


@dataclass
class DemoWorld:
    streams: StreamsWorld
    lending: LendingWorld


def build_demo_world(sizes: WorldSizes, reference_time: datetime) -> DemoWorld:
    return DemoWorld(
        streams=build_streams_world(sizes.streams, reference_time=reference_time),
        lending=build_lending_world(sizes.loans, reference_time=reference_time),
    )


def write_demo_world_to_db(engine: Engine, world: DemoWorld, progress: Progress) -> None:
    """Replace the demo tables' rows with the world's database side."""
    write_streams_to_db(engine, world.streams, progress=progress)
    write_lending_to_db(engine, world.lending, progress=progress)


def load_demo_world_into_ledger(ledger: DevnetLedger, world: DemoWorld, progress: Progress) -> TransactionStore:
    """Put the world's chain side into the devnet; returns its transaction store."""
    transactions = TransactionStore(ledger)
    load_streams_into_ledger(ledger, world.streams, progress=progress)
    load_lending_into_ledger(ledger, transactions, world.lending, progress=progress)
    return transactions
