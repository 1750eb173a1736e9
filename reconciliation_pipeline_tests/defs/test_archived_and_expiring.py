"""Archived and expiring entries, in every domain that reads contract data.

In each domain, three entries that otherwise agree with the database are given a TTL on the
devnet: one that ran out a few ledgers ago (still in the live state: `liveUntilLedgerSeq`
behind the ledger it is read at), one that ran out long ago (evicted to the hot archive: the
RPC's placeholder 0), and one that runs out inside the warning horizon. The first two are
ARCHIVED, the third TTL_EXPIRING, and none of them is missing or clean. A classic trustline
has no TTL and never is either.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.identities import DEVNET
from recon_demo.worlds.balances import build_balances_world, load_balances_into_ledger, write_balances_to_db
from recon_demo.worlds.lending import build_lending_world, load_lending_into_ledger, write_lending_to_db
from recon_demo.worlds.markets import build_markets_world, load_markets_into_ledger, write_markets_to_db
from recon_demo.worlds.streaks import build_streaks_world, load_streaks_into_ledger, write_streaks_to_db
from recon_demo.worlds.streams import (
    ARCHIVED_STREAM,
    build_streams_world,
    load_streams_into_ledger,
    write_streams_to_db,
)
from reconciliation_pipeline.chain.keys import address_entry_key, instance_key, sac_balance_key, u64_entry_key
from reconciliation_pipeline.core.drift import DriftClass
from reconciliation_pipeline.defs.balances.definitions import BALANCES
from reconciliation_pipeline.defs.lending.definitions import LENDING
from reconciliation_pipeline.defs.markets.definitions import MARKETS
from reconciliation_pipeline.defs.streaks.definitions import STREAKS
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline_tests.conftest import make_resources
from reconciliation_pipeline_tests.defs.streaks.conftest import streak_resources
from soroban_devnet.ledger import DEFAULT_EVICTION_DELAY, DevnetLedger
from soroban_devnet.server import DevnetServer
from soroban_devnet.streaks_contract import player_key
from soroban_devnet.transactions import TransactionStore

WARNING = 1_000
"""TTL_WARNING_LEDGERS for these runs."""

Entry = tuple[str, str, str]
"""(entity type, entity id, base64 ledger key)."""


@dataclass(frozen=True)
class Case:
    seed: Callable[[sa.Engine, DevnetLedger, datetime], None]
    run: Callable[[str, str, str], dg.ExecuteInProcessResult]
    """(database url, rpc url, partition)."""
    expired: Entry
    evicted: Entry
    expiring: Entry
    catalogued: frozenset[str] = frozenset()
    """Entities the domain's own drift catalogue archives (the streams world's stream 10)."""


def _settings(database_url: str, rpc_url: str) -> dict[str, object]:
    return make_resources(database_url, rpc_url, settings={"ttl_warning_ledgers": WARNING})


def _nightly(built: object, scope: str) -> Callable[[str, str, str], dg.ExecuteInProcessResult]:
    def run(database_url: str, rpc_url: str, partition: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(built.assets(scope), resources=_settings(database_url, rpc_url),  # type: ignore[attr-defined]
                              partition_key=partition)
    return run


def _frequent(built: object) -> Callable[[str, str, str], dg.ExecuteInProcessResult]:
    def run(database_url: str, rpc_url: str, partition: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(built.assets("frequent"), resources=_settings(database_url, rpc_url))  # type: ignore[attr-defined]
    return run


def _streaks(database_url: str, rpc_url: str, partition: str) -> dg.ExecuteInProcessResult:
    resources = {**streak_resources(database_url, rpc_url, secret=""), "settings": _settings(database_url, rpc_url)[
        "settings"]}
    return dg.materialize(STREAKS.assets("nightly"), resources=resources, partition_key=partition)


def _streams(engine: sa.Engine, ledger: DevnetLedger, now: datetime) -> None:
    world = build_streams_world(40, reference_time=now)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)


def _lending(engine: sa.Engine, ledger: DevnetLedger, now: datetime) -> None:
    world = build_lending_world(40, reference_time=now)
    write_lending_to_db(engine, world)
    load_lending_into_ledger(ledger, TransactionStore(ledger), world)


def _markets(engine: sa.Engine, ledger: DevnetLedger, now: datetime) -> None:
    world = build_markets_world(30)
    write_markets_to_db(engine, world)
    load_markets_into_ledger(ledger, world)


def _balances(engine: sa.Engine, ledger: DevnetLedger, now: datetime) -> None:
    world = build_balances_world(300)
    write_balances_to_db(engine, world)
    load_balances_into_ledger(ledger, world)


STREAKS_WORLD = build_streaks_world(reference_time=datetime.now(UTC), n_clean=20)


def _streaks_seed(engine: sa.Engine, ledger: DevnetLedger, now: datetime) -> None:
    write_streaks_to_db(engine, STREAKS_WORLD)
    load_streaks_into_ledger(ledger, TransactionStore(ledger), STREAKS_WORLD)


def _stream(i: int) -> Entry:
    return "stream", f"stream_{i}", u64_entry_key(DEVNET.stream_contract_id, "Stream", i)


def _lending_entries() -> tuple[Entry, Entry, Entry]:
    world = build_lending_world(40, reference_time=datetime.now(UTC))
    provider, borrower = world.positions_chain["provider"].iloc[3], world.reputation_chain["address"].iloc[5]
    return (("loan", "loan_30", u64_entry_key(DEVNET.lending_contract_id, "Loan", 30)),
            ("liquidity_position", f"position_{provider}",
             address_entry_key(DEVNET.lending_contract_id, "Position", provider)),
            ("reputation", f"reputation_{borrower}", address_entry_key(DEVNET.lending_contract_id, "Reputation",
                                                                       borrower)))


def _market(i: int) -> Entry:
    return "amm_pool", f"market_{i}", u64_entry_key(DEVNET.amm_contract_id, "Pool", i)


def _market_contract(i: int) -> Entry:
    world = build_markets_world(30)
    return "market", f"market_{i}", instance_key(world.db.set_index("market_id").at[i, "contract_address"])


def _holder(k: int) -> Entry:
    world = build_balances_world(300)
    row = world.db.iloc[k - 1]
    assert row["wallet_address"].startswith("C")  # a contract wallet: its USDC is a SAC balance entry
    return "user", f"user_{row['user_id']}", sac_balance_key(DEVNET.usdc_contract_id, row["wallet_address"])


def _player(name: str) -> Entry:
    wallet = STREAKS_WORLD.by_name(name).wallet
    assert wallet is not None
    return "player", wallet, player_key(DEVNET.streak_contract_id, wallet)


CASES = {
    "streams": Case(_streams, _nightly(STREAMS, "nightly"), _stream(20), _stream(21), _stream(22),
                    catalogued=frozenset({f"stream_{ARCHIVED_STREAM}"})),
    "lending": Case(_lending, _nightly(LENDING, "nightly"), *_lending_entries()),
    "markets": Case(_markets, _frequent(MARKETS), _market(20), _market_contract(21), _market(22)),
    "balances": Case(_balances, _frequent(BALANCES), _holder(16), _holder(21), _holder(26)),
    "streaks": Case(_streaks_seed, _streaks, _player("player_1"), _player("player_2"), _player("player_3")),
}


@pytest.mark.parametrize("domain", sorted(CASES))
def test_archived_and_expiring_entries_are_findings_of_their_own(domain: str, engine: sa.Engine, database_url: str,
                                                                 reference_time: datetime) -> None:
    case = CASES[domain]
    ledger = DevnetLedger(ledger_close_seconds=math.inf)
    case.seed(engine, ledger, reference_time)
    latest = ledger.latest_ledger
    for (_, _, key), live_until in ((case.expired, latest - 3), (case.evicted, latest - DEFAULT_EVICTION_DELAY - 50),
                                    (case.expiring, latest + WARNING // 2)):
        assert ledger.get_entry(key) is not None
        ledger.extend_ttl(key, live_until)
    partition = (reference_time - timedelta(days=1)).strftime("%Y-%m-%d")
    with DevnetServer(ledger) as devnet:
        result = case.run(database_url, devnet.url, partition)
    with engine.connect() as connection:
        found = pd.read_sql(sa.text("SELECT entity_type, entity_id, field, drift_class, severity, chain_value, details "
                                    "FROM recon.discrepancies WHERE run_id = :r AND domain = :d"), connection,
                            params={"r": result.run_id, "d": domain})

    def classes(entry: Entry) -> dict[str, dict]:
        rows = found[(found["entity_type"] == entry[0]) & (found["entity_id"] == entry[1])]
        return {r.drift_class: r.details | {"chain_value": r.chain_value, "field": r.field}
                for r in rows.itertuples(index=False)}

    expired, evicted, expiring = classes(case.expired), classes(case.evicted), classes(case.expiring)
    assert set(expired) == set(evicted) == {DriftClass.ARCHIVED.value}
    assert set(expiring) == {DriftClass.TTL_EXPIRING.value}
    expired, evicted, expiring = expired["ARCHIVED"], evicted["ARCHIVED"], expiring["TTL_EXPIRING"]
    # How long ago it expired, when the RPC still says; the placeholder 0 once it is in the hot archive.
    assert (expired["chain_value"], expired["expired_ledgers_ago"]) == (str(latest - 3), 3)
    assert evicted["chain_value"] == "0" and "hot archive" in evicted["archived"]
    assert (expiring["chain_value"], expiring["ledgers_left"]) == (str(latest + WARNING // 2), WARNING // 2)
    assert datetime.fromisoformat(expiring["expires_at_estimated"]) > datetime.now(UTC)
    assert expiring["field"] == "live_until_ledger"
    # Nothing else in the domain is archived or expiring: every other entry has a long TTL, trustlines none.
    ttl = found[found["drift_class"].isin([DriftClass.ARCHIVED.value, DriftClass.TTL_EXPIRING.value])]
    assert set(ttl["entity_id"]) == {case.expired[1], case.evicted[1], case.expiring[1], *case.catalogued}
