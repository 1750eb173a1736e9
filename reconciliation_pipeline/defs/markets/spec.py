"""The markets reconciliation as data: CONTRACTS.md §3 (AMM pools) and §4 (market contracts).

Two entities share one database snapshot of `markets`:

- `amm_pool`: the AMM's persistent `Pool(u64 market_id)` entry (liquidity, and
  the odds derived from it);
- `market`: the market's own contract, whose instance storage holds its
  `Status` and `Outcome`.

They are separate entities so that one side being unreadable never resolves
or hides the other's incidents. Markets have no events in CONTRACTS.md, so
the every-5-minutes run reads every entry; an entry whose `last_modified_ledger`
is unchanged since it was last compared is not decoded or diffed again.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from reconciliation_pipeline.chain.layouts import Kind, StructLayout
from reconciliation_pipeline.core.amounts import exact_int_mask
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.money import MoneyField, UsdcAsset
from reconciliation_pipeline.core.spec import (
    Authority,
    Cadence,
    ComparedField,
    Comparison,
    DataKey,
    DomainSpec,
    Entity,
    EntryVersions,
    Hooks,
    Incremental,
    InstanceOf,
    Invariants,
    KeyKind,
    Layout,
    Scope,
    Source,
)
from reconciliation_pipeline.defs.markets import rules

CANONICAL_STATUSES = tuple(s.lower() for s in rules.MARKET_STATUSES)

POOL_LAYOUT = StructLayout(fields={"no_liquidity": Kind.I128, "yes_liquidity": Kind.I128})
"""`Pool { no_liquidity: i128, yes_liquidity: i128 }` (CONTRACTS.md §3)."""


def _resolution_consistent(status: pd.Series, outcome: pd.Series) -> tuple[pd.Series, pd.Series]:
    resolved = status == rules.RESOLVED
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
    winning_outcome: Series[object] = pa.Field(isin=list(rules.OUTCOME_NAMES), nullable=True)

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


SOURCE = Source(
    name=rules.SOURCE,
    query="snapshots/markets/markets.sql",
    key_column=rules.KEY,
    key_kind=KeyKind.U64,
    entity_type="market",
    entity_id_prefix="market_",
    amount_columns=("yes_liquidity", "no_liquidity"),
    invariants=Invariants(MarketRowInvariants, "market_invariants",
                          "liquidity >= 0 and exact; a winning outcome exactly when resolved", Severity.WARN),
    description="Prediction markets as the application database records them: title, the market's contract, "
    "status, winning outcome and the pool liquidity users trade against (exact integers in base units). One row "
    "per market.",
)

POOLS = Entity(
    name=rules.POOLS,
    entity_type="amm_pool",
    source=SOURCE,
    key_source=DataKey("Pool", contract="amm_contract_id"),
    layout=Layout.of(POOL_LAYOUT),
    compared=(ComparedField("yes_liquidity", Comparison.AMOUNT), ComparedField("no_liquidity", Comparison.AMOUNT)),
    authority=Authority.CHAIN,
    chain_invariants=Invariants(PoolInvariants, "pool_invariants",
                                "every decoded pool has non-negative exact liquidity", Severity.CRITICAL),
    description="The AMM's `Pool(u64)` entry of every market the database knows: YES and NO liquidity, which set "
    "the odds users see. Read 200 per request within the run's time limit; an incremental run leaves pools "
    "compared before at the same ledger `unchanged`.",
)

CONTRACTS = Entity(
    name=rules.CONTRACTS,
    entity_type="market",
    source=SOURCE,
    key_source=InstanceOf(column="contract_address"),
    layout=Layout(decode=rules.decode_market_instance, columns=rules.MARKET_FIELDS),
    compared=(ComparedField("status", Comparison.EXACT, drift_class=DriftClass.STATUS_MISMATCH),),
    authority=Authority.CHAIN,
    address_columns=("contract_address",),
    chain_invariants=Invariants(ResolutionInvariants, "contract_invariants",
                                "a market contract has an outcome exactly when resolved", Severity.CRITICAL),
    description="Each market contract's own view of the market, from its instance storage: status (open, closed, "
    "resolved) and, once resolved, the winning outcome that pays out. Many contracts per request; markets whose "
    "contract address is not a valid C... address are not read (they are INVALID_ADDRESS findings).",
)

SPEC = DomainSpec(
    domain="markets",
    description="the markets table against the AMM's pools (liquidity and odds) and each market's contract "
    "(status and winning outcome; a different outcome is CRITICAL).",
    sources=(SOURCE,),
    entities=(POOLS, CONTRACTS),
    findings_asset="market",
    repairs_asset="market",
    hooks=Hooks(findings=rules.odds_and_outcomes, decorate=rules.with_market_context),
    # Pool liquidity is the app's USDC in base units; odds and outcomes are not money.
    money=(MoneyField("amm_pool", ("yes_liquidity", "no_liquidity"), UsdcAsset()),),
    scopes=(Scope(
        name="frequent",
        group="markets",
        cadence=Cadence.FREQUENT,
        budget="frequent",
        incremental=Incremental(
            plan_asset="market_sweep_plan",
            watermark_scope="entry_versions",
            changes=EntryVersions(),
            description="Whether this markets run compares everything or skips entries unchanged since they were "
            "last compared (their last_modified_ledger), and the markets with open incidents, which are always "
            "compared. A full sweep for the first run, a run tagged recon/sweep=full and a chain behind the "
            "watermark.",
        ),
    ),),
)
