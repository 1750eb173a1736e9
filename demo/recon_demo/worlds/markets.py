"""A prediction-markets world on both sides, with a catalogue of injected drift.

The database side is the `markets` table; the chain side is the AMM's
`Pool(u64)` entries and each market contract's instance storage
(CONTRACTS.md §3, §4). Both start equal; each injection below changes one side
and writes down, once, exactly the findings the pipeline must report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from stellar_sdk import scval, xdr

from recon_demo import DEMO_SQL
from recon_demo.catalogue import ExpectedFinding, InjectedDrift, expected_findings
from recon_demo.identities import DEVNET, DevnetIdentities, contract_id
from reconciliation_pipeline.chain.keys import enum_key, instance_key, u64_entry_key
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from soroban_devnet.entries import contract_data_entry, unit_enum
from soroban_devnet.ledger import DevnetLedger

MIN_MARKETS = 15
"""The catalogue uses markets 2-11; smaller worlds cannot hold it."""

INVALID_CONTRACT = "CMARKET8ISNOTASTELLARCONTRACTADDRESS"


@dataclass
class MarketsWorld:
    db: pd.DataFrame
    """Rows of the `markets` table (canonical column names, exact ints)."""
    pools: pd.DataFrame
    """The AMM's `Pool(u64)` entries that decode: market_id, yes_liquidity, no_liquidity."""
    contracts: pd.DataFrame
    """Market contracts with an instance entry: market_id, contract_address, status, winning_outcome."""
    undecodable_pools: dict[int, str]
    """market id -> base64 LedgerEntryData of a pool entry that breaks the layout."""
    catalogue: list[InjectedDrift] = field(default_factory=list)
    identities: DevnetIdentities = DEVNET

    def expected_findings(self) -> pd.DataFrame:
        return expected_findings(self.catalogue)


def market_contract_id(market_id: int) -> str:
    return contract_id(f"market:{market_id}")


def _finding(entity_type: str, market_id: int, drift_class: DriftClass, field_name: str = WHOLE_ENTITY,
             db_value: object = None, chain_value: object = None,
             severity: Severity = Severity.WARN) -> ExpectedFinding:
    return ExpectedFinding(
        entity_type=entity_type,
        entity_id=f"market_{market_id}",
        field=field_name,
        drift_class=drift_class.value,
        severity=severity.value,
        db_value=None if db_value is None else str(db_value),
        chain_value=None if chain_value is None else str(chain_value),
    )


def _clean_markets(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    status = rng.choice(["open", "closed", "resolved"], size=n, p=[0.6, 0.2, 0.2])
    outcome = rng.integers(0, 2, size=n)
    return pd.DataFrame(
        {
            "market_id": ids.astype(object),
            "title": [f"Will event #{i} happen by the end of the season?" for i in ids],
            "contract_address": [market_contract_id(int(i)) for i in ids],
            "status": status.astype(object),
            "winning_outcome": pd.Series(
                [int(o) if s == "resolved" else None for s, o in zip(status, outcome, strict=True)], dtype=object
            ),
            "yes_liquidity": rng.integers(1_000_000_000, 10_000_000_000_000, size=n, dtype=np.int64).astype(object),
            "no_liquidity": rng.integers(1_000_000_000, 10_000_000_000_000, size=n, dtype=np.int64).astype(object),
        }
    )


def _set(frame: pd.DataFrame, market_id: int, **values: object) -> None:
    row = frame.index[frame["market_id"] == market_id][0]
    for column, value in values.items():
        frame.at[row, column] = value


def _drop(frame: pd.DataFrame, market_id: int) -> None:
    frame.drop(frame.index[frame["market_id"] == market_id], inplace=True)


Injection = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[int, str], DevnetIdentities], InjectedDrift]


def _odds_drift(db: pd.DataFrame, pools: pd.DataFrame, contracts: pd.DataFrame, *_: object) -> InjectedDrift:
    for frame in (db, contracts):
        _set(frame, 2, status="open", winning_outcome=None)
    _set(pools, 2, yes_liquidity=6_000_000_000, no_liquidity=4_000_000_000)
    _set(db, 2, yes_liquidity=5_000_000_000, no_liquidity=5_000_000_000)
    return InjectedDrift(
        "market_2_stale_liquidity_moves_odds",
        "The app missed a 1,000 USDC YES buy: its liquidity is stale and the odds it shows are 10 points off.",
        (
            _finding("amm_pool", 2, DriftClass.VALUE_MISMATCH, "yes_liquidity", 5_000_000_000, 6_000_000_000),
            _finding("amm_pool", 2, DriftClass.VALUE_MISMATCH, "no_liquidity", 5_000_000_000, 4_000_000_000),
            _finding("amm_pool", 2, DriftClass.VALUE_MISMATCH, "odds",
                     "yes=0.500000 no=0.500000", "yes=0.400000 no=0.600000"),
        ),
    )


def _small_liquidity_drift(db: pd.DataFrame, pools: pd.DataFrame, *_: object) -> InjectedDrift:
    _set(pools, 3, yes_liquidity=500_000_000_000, no_liquidity=500_000_000_000)
    _set(db, 3, yes_liquidity=500_000_000_000, no_liquidity=500_001_000_000)
    return InjectedDrift(
        "market_3_small_liquidity_drift",
        "The app's NO liquidity is 0.1 USDC high on a 50,000 USDC pool: a liquidity finding, "
        "but the odds move far less than the threshold.",
        (_finding("amm_pool", 3, DriftClass.VALUE_MISMATCH, "no_liquidity", 500_001_000_000, 500_000_000_000),),
    )


def _outcome_mismatch(db: pd.DataFrame, pools: pd.DataFrame, contracts: pd.DataFrame, *_: object) -> InjectedDrift:
    _set(db, 4, status="resolved", winning_outcome=0)
    _set(contracts, 4, status="resolved", winning_outcome=1)
    return InjectedDrift(
        "market_4_outcome_mismatch",
        "The contract resolved market 4 as NO; the app recorded YES and would pay the wrong side.",
        (_finding("market", 4, DriftClass.VALUE_MISMATCH, "winning_outcome", 0, 1, Severity.CRITICAL),),
    )


def _resolved_on_chain_only(db: pd.DataFrame, pools: pd.DataFrame, contracts: pd.DataFrame,
                            *_: object) -> InjectedDrift:
    _set(db, 5, status="closed", winning_outcome=None)
    _set(contracts, 5, status="resolved", winning_outcome=0)
    return InjectedDrift(
        "market_5_resolved_on_chain_only",
        "The oracle resolved market 5 on chain; the app never heard and still shows it closed.",
        (_finding("market", 5, DriftClass.STATUS_MISMATCH, "status", "closed", "resolved"),),
    )


def _resolved_in_db_only(db: pd.DataFrame, pools: pd.DataFrame, contracts: pd.DataFrame,
                         *_: object) -> InjectedDrift:
    _set(db, 6, status="resolved", winning_outcome=1)
    _set(contracts, 6, status="closed", winning_outcome=None)
    return InjectedDrift(
        "market_6_resolved_in_db_only",
        "The app marked market 6 resolved but the resolution transaction never landed.",
        (_finding("market", 6, DriftClass.STATUS_MISMATCH, "status", "resolved", "closed"),),
    )


def _pool_missing(db: pd.DataFrame, pools: pd.DataFrame, *_: object) -> InjectedDrift:
    _drop(pools, 7)
    return InjectedDrift(
        "market_7_pool_missing",
        "The app lists market 7 but the AMM has no pool for it.",
        (_finding("amm_pool", 7, DriftClass.MISSING_ON_CHAIN),),
    )


def _invalid_contract(db: pd.DataFrame, *_: object) -> InjectedDrift:
    _set(db, 8, contract_address=INVALID_CONTRACT)
    return InjectedDrift(
        "market_8_invalid_contract_address",
        "The app stored a contract address for market 8 that is not a valid C... address; "
        "its contract is not read, its pool still is.",
        (_finding("market", 8, DriftClass.INVALID_ADDRESS, "contract_address", INVALID_CONTRACT),),
    )


def _contract_missing(db: pd.DataFrame, pools: pd.DataFrame, contracts: pd.DataFrame, *_: object) -> InjectedDrift:
    _drop(contracts, 9)
    return InjectedDrift(
        "market_9_contract_missing",
        "Market 9's contract has no instance on chain (never deployed, or archived).",
        (_finding("market", 9, DriftClass.MISSING_ON_CHAIN),),
    )


def _undecodable_pool(db: pd.DataFrame, pools: pd.DataFrame, contracts: pd.DataFrame,
                      undecodable: dict[int, str], ids: DevnetIdentities) -> InjectedDrift:
    key = enum_key("Pool", scval.to_uint64(10))
    # An AMM upgrade stored the pool as a bare i128: the entry no longer follows the layout.
    undecodable[10] = contract_data_entry(ids.amm_contract_id, key, scval.to_int128(1)).to_xdr()
    _drop(pools, 10)
    return InjectedDrift(
        "market_10_undecodable_pool",
        "The AMM's entry for market 10 does not follow the Pool layout; the raw XDR is kept.",
        (_finding("amm_pool", 10, DriftClass.CHAIN_READ_ERROR),),
    )


def _resolved_without_outcome(db: pd.DataFrame, pools: pd.DataFrame, contracts: pd.DataFrame,
                              *_: object) -> InjectedDrift:
    _set(db, 11, status="resolved", winning_outcome=None)
    _set(contracts, 11, status="resolved", winning_outcome=0)
    return InjectedDrift(
        "market_11_resolved_without_outcome",
        "The app marked market 11 resolved without recording the outcome: a broken row, and "
        "an outcome that differs from the contract's YES.",
        (
            _finding("market", 11, DriftClass.INVARIANT_VIOLATION, "resolved_has_outcome", "status=resolved"),
            _finding("market", 11, DriftClass.VALUE_MISMATCH, "winning_outcome", None, 0, Severity.CRITICAL),
        ),
    )


CATALOGUE: tuple[Injection, ...] = (
    _odds_drift,
    _small_liquidity_drift,
    _outcome_mismatch,
    _resolved_on_chain_only,
    _resolved_in_db_only,
    _pool_missing,
    _invalid_contract,
    _contract_missing,
    _undecodable_pool,
    _resolved_without_outcome,
)


def build_markets_world(n: int, *, seed: int = 20261122, ids: DevnetIdentities = DEVNET) -> MarketsWorld:
    """`n` markets on both sides with the catalogue injected."""
    if n < MIN_MARKETS:
        raise ValueError(f"the markets world needs at least {MIN_MARKETS} markets to hold its catalogue, got {n}")
    db = _clean_markets(n, seed)
    pools = db[["market_id", "yes_liquidity", "no_liquidity"]].copy()
    contracts = db[["market_id", "contract_address", "status", "winning_outcome"]].copy()
    undecodable: dict[int, str] = {}
    catalogue = [inject(db, pools, contracts, undecodable, ids) for inject in CATALOGUE]
    return MarketsWorld(
        db=db.reset_index(drop=True),
        pools=pools.reset_index(drop=True),
        contracts=contracts.reset_index(drop=True),
        undecodable_pools=undecodable,
        catalogue=catalogue,
        identities=ids,
    )


# -- writing it to both sides --------------------------------------------------

_MARKET_WASM_HASH = hashlib.sha256(b"reconciliation-devnet:market-contract-wasm").digest()


def pool_entry(amm_contract_id: str, market_id: int, yes_liquidity: int, no_liquidity: int) -> tuple[str, str]:
    """(LedgerKey, LedgerEntryData) of `Pool(u64) -> Pool { no_liquidity, yes_liquidity }`."""
    key = enum_key("Pool", scval.to_uint64(market_id))
    value = scval.to_struct({"no_liquidity": scval.to_int128(no_liquidity),
                             "yes_liquidity": scval.to_int128(yes_liquidity)})
    return (u64_entry_key(amm_contract_id, "Pool", market_id),
            contract_data_entry(amm_contract_id, key, value).to_xdr())


def market_instance_entry(contract: str, status: str, winning_outcome: int | None) -> tuple[str, str]:
    """(LedgerKey, LedgerEntryData) of a market contract's instance: `Status` and `Outcome`."""
    storage = scval.to_map({
        scval.to_symbol("Status"): unit_enum(status.capitalize()),
        scval.to_symbol("Outcome"): scval.to_void() if winning_outcome is None else scval.to_uint32(winning_outcome),
    })
    instance = xdr.SCVal(
        type=xdr.SCValType.SCV_CONTRACT_INSTANCE,
        instance=xdr.SCContractInstance(
            executable=xdr.ContractExecutable(
                type=xdr.ContractExecutableType.CONTRACT_EXECUTABLE_WASM, wasm_hash=xdr.Hash(_MARKET_WASM_HASH)
            ),
            storage=storage.map,
        ),
    )
    key = xdr.SCVal(type=xdr.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE)
    return instance_key(contract), contract_data_entry(contract, key, instance).to_xdr()



def write_markets_to_db(engine: Engine, world: MarketsWorld) -> int:
    """Replace the `markets` table's rows with the world's database side (COPY)."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(DEMO_SQL.query("seed/markets_truncate.sql"))
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(DEMO_SQL.read("seed/markets_copy.sql")) as copy:
            for row in world.db.itertuples(index=False):
                copy.write_row((str(row.market_id), row.title, row.contract_address, row.status,
                                row.winning_outcome, str(row.yes_liquidity), str(row.no_liquidity), now))
    return len(world.db)


def load_markets_into_ledger(ledger: DevnetLedger, world: MarketsWorld) -> int:
    """Put the AMM pools and the market contracts' instances into the devnet."""
    amm = world.identities.amm_contract_id
    for row in world.pools.itertuples(index=False):
        ledger.put_raw_entry(*pool_entry(amm, int(row.market_id), int(row.yes_liquidity), int(row.no_liquidity)))
    for market_id, data in world.undecodable_pools.items():
        ledger.put_raw_entry(u64_entry_key(amm, "Pool", market_id), data)
    for row in world.contracts.itertuples(index=False):
        ledger.put_raw_entry(*market_instance_entry(row.contract_address, row.status, row.winning_outcome))
    return len(world.pools) + len(world.undecodable_pools) + len(world.contracts)


