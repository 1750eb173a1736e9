"""The markets reconciliation as data: CONTRACTS.md §3 (AMM pools) and §4 (market contracts).

Two entity types share one database snapshot of `markets`:

- `amm_pool`: the AMM's persistent `Pool(u64 market_id)` entry (liquidity, and
  the odds derived from it);
- `market`: the market's own contract, whose instance storage holds its
  `Status` and `Outcome`.

They are separate entities so that one side being unreadable never resolves
or hides the other's incidents.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series
from stellar_sdk import scval, xdr

from reconciliation_pipeline.chain.decode import DecodeError, as_u32, as_unit_enum, contract_data_value
from reconciliation_pipeline.chain.layouts import Kind, StructLayout
from reconciliation_pipeline.core.amounts import exact_int_mask
from reconciliation_pipeline.core.drift import DriftClass
from reconciliation_pipeline.core.spec import (
    Authority,
    ComparedField,
    Comparison,
    ContractDataLayout,
    KeyKind,
    ReconSpec,
)

DOMAIN = "markets"
MARKET_FIELDS = ("status", "winning_outcome")
MARKET_STATUSES = ("Open", "Closed", "Resolved")
CANONICAL_STATUSES = tuple(s.lower() for s in MARKET_STATUSES)
RESOLVED = "resolved"
OUTCOME_NAMES = {0: "YES", 1: "NO"}
STATUS_KEY = "Status"
OUTCOME_KEY = "Outcome"


POOL_LAYOUT = StructLayout(fields={"no_liquidity": Kind.I128, "yes_liquidity": Kind.I128})
"""`Pool { no_liquidity: i128, yes_liquidity: i128 }` (CONTRACTS.md §3)."""


def _outcome(value: xdr.SCVal) -> int | None:
    """`Option<u32>`: Void → None, U32(0 | 1) → the outcome."""
    if value.type == xdr.SCValType.SCV_VOID:
        return None
    outcome = as_u32(value, "Outcome")
    if outcome not in OUTCOME_NAMES:
        raise DecodeError(f"Outcome: {outcome} is neither 0 (YES) nor 1 (NO)")
    return outcome


def decode_market_instance(entry_data_b64: str) -> dict[str, Any]:
    """A market contract's instance storage → `status` (lower case) and `winning_outcome`.

    The instance map may hold other keys; `Status` must be there, `Outcome` may be
    absent before resolution (read as None, like `Void`). Decoded with the SDK's XDR
    classes: the fast path has no contract-instance shape, and there is one entry
    per market, not per trade.
    """
    value = contract_data_value(entry_data_b64)
    if value.type != xdr.SCValType.SCV_CONTRACT_INSTANCE or value.instance is None:
        raise DecodeError(f"expected a contract instance, got {value.type.name}")
    storage: dict[str, xdr.SCVal] = {}
    for entry in (value.instance.storage.sc_map if value.instance.storage is not None else []):
        if entry.key.type == xdr.SCValType.SCV_SYMBOL:
            storage[scval.from_symbol(entry.key)] = entry.val
    if STATUS_KEY not in storage:
        raise DecodeError(f"instance storage has no {STATUS_KEY} (keys: {sorted(storage)})")
    return {
        "status": as_unit_enum(storage[STATUS_KEY], MARKET_STATUSES, STATUS_KEY),
        "winning_outcome": _outcome(storage[OUTCOME_KEY]) if OUTCOME_KEY in storage else None,
    }



def _resolution_consistent(status: pd.Series, outcome: pd.Series) -> tuple[pd.Series, pd.Series]:
    resolved = status == RESOLVED
    has_outcome = outcome.map(lambda v: v is not None and v == v).astype(bool)
    return (~resolved | has_outcome).astype(bool), (resolved | ~has_outcome).astype(bool)


class PoolInvariants(pa.DataFrameModel):
    """A pool's liquidity is a non-negative exact integer on both sides."""

    yes_liquidity: Series[object] = pa.Field(ge=0)
    no_liquidity: Series[object] = pa.Field(ge=0)

    @pa.check("yes_liquidity", "no_liquidity", name="exact_integer_amount")
    def exact_integer_amount(cls, values: pd.Series) -> pd.Series:
        return exact_int_mask(values)

    class Config:
        strict = False


class ResolutionInvariants(pa.DataFrameModel):
    """A market has a winning outcome exactly when it is resolved (CONTRACTS.md §4)."""

    status: Series[object] = pa.Field(isin=list(CANONICAL_STATUSES))
    winning_outcome: Series[object] = pa.Field(isin=list(OUTCOME_NAMES), nullable=True)

    @pa.dataframe_check(name="resolved_has_outcome", columns=("status", "winning_outcome"))
    def resolved_has_outcome(cls, frame: pd.DataFrame, *, columns: tuple[str, str]) -> pd.Series:
        return _resolution_consistent(frame[columns[0]], frame[columns[1]])[0]

    @pa.dataframe_check(name="outcome_only_when_resolved", columns=("status", "winning_outcome"))
    def outcome_only_when_resolved(cls, frame: pd.DataFrame, *, columns: tuple[str, str]) -> pd.Series:
        return _resolution_consistent(frame[columns[0]], frame[columns[1]])[1]

    class Config:
        strict = False


class MarketRowInvariants(PoolInvariants, ResolutionInvariants):
    """What every `markets` row must satisfy: sane liquidity and a consistent resolution."""


POOL_SPEC = ReconSpec(
    domain=DOMAIN,
    entity_type="amm_pool",
    entity_id_prefix="market_",
    key_column="market_id",
    snapshot_query="snapshots/markets/db_markets.sql",
    layout=ContractDataLayout.of("Pool", KeyKind.U64, POOL_LAYOUT),
    compared=(
        ComparedField("yes_liquidity", Comparison.AMOUNT),
        ComparedField("no_liquidity", Comparison.AMOUNT),
    ),
    authority=Authority.CHAIN,
    amount_columns=("yes_liquidity", "no_liquidity"),
    db_invariants=MarketRowInvariants,
    chain_invariants=PoolInvariants,
)

MARKET_SPEC = ReconSpec(
    domain=DOMAIN,
    entity_type="market",
    entity_id_prefix="market_",
    key_column="market_id",
    snapshot_query="snapshots/markets/db_markets.sql",
    layout=ContractDataLayout(
        key_variant="instance", key_kind=KeyKind.U64, decode=decode_market_instance, columns=MARKET_FIELDS
    ),
    compared=(ComparedField("status", Comparison.EXACT, drift_class=DriftClass.STATUS_MISMATCH),),
    authority=Authority.CHAIN,
    address_columns=("contract_address",),
    db_invariants=MarketRowInvariants,
    chain_invariants=ResolutionInvariants,
)
"""The `layout` here only names the decoder and its columns: each market's entry lives in
its own contract (`markets.contract_address`), keyed by `instance_key`, so the ledger keys
are built per row by `chain.snapshot_market_contracts`, not by `layout.ledger_key`."""
