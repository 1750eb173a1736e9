"""The lending reconciliation as data: CONTRACTS.md §2 against `loans`,
`liquidity_positions` and `reputation`.

Three entity types share the generic machinery (snapshots, diff, invariants,
field repairs). What is genuinely lending-specific (provisional ids, pending
transactions, event indexing, inserting missing loans) lives beside this file.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from reconciliation_pipeline.chain.layouts import Kind, ScalarLayout, StructLayout, UnitEnum
from reconciliation_pipeline.core.amounts import exact_int_mask
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.spec import (
    Authority,
    ComparedField,
    Comparison,
    ContractDataLayout,
    KeyKind,
    ReconSpec,
)

DOMAIN = "lending"
LOAN_STATUSES = ("Active", "Repaid", "Defaulted", "Liquidated")
CANONICAL_LOAN_STATUSES = tuple(s.lower() for s in LOAN_STATUSES)
U32_MAX = 2**32 - 1

LOAN_LAYOUT = StructLayout(
    fields={"borrower": Kind.ADDRESS, "principal": Kind.I128, "outstanding": Kind.I128,
            "status": UnitEnum(LOAN_STATUSES)}
)
"""`Loan { borrower, principal, outstanding, status }` (CONTRACTS.md §2)."""
POSITION_LAYOUT = StructLayout(fields={"deposited": Kind.I128, "shares": Kind.I128})
"""`Position { deposited, shares }`."""
REPUTATION_LAYOUT = ScalarLayout(column="score", kind=Kind.U32)
"""`Reputation(Address) -> u32`."""



class LoanInvariants(pa.DataFrameModel):
    """What every loan must satisfy on both sides."""

    principal: Series[object] = pa.Field(ge=0)
    outstanding: Series[object] = pa.Field(ge=0)
    status: Series[object] = pa.Field(isin=list(CANONICAL_LOAN_STATUSES))

    @pa.check("principal", "outstanding", name="exact_integer_amount")
    def exact_integer_amount(cls, values: pd.Series) -> pd.Series:
        return exact_int_mask(values)

    class Config:
        strict = False


class PositionInvariants(pa.DataFrameModel):
    """A liquidity position never holds a negative deposit or share count."""

    deposited: Series[object] = pa.Field(ge=0)
    shares: Series[object] = pa.Field(ge=0)

    @pa.check("deposited", "shares", name="exact_integer_amount")
    def exact_integer_amount(cls, values: pd.Series) -> pd.Series:
        return exact_int_mask(values)

    class Config:
        strict = False


class ReputationInvariants(pa.DataFrameModel):
    """A reputation score is a u32 on chain; the database must hold one that fits."""

    score: Series[object] = pa.Field(ge=0, le=U32_MAX)

    @pa.check("score", name="exact_integer_score")
    def exact_integer_score(cls, values: pd.Series) -> pd.Series:
        return exact_int_mask(values)

    class Config:
        strict = False


LOANS_SPEC = ReconSpec(
    domain=DOMAIN,
    entity_type="loan",
    entity_id_prefix="loan_",
    key_column="loan_id",
    snapshot_query="snapshots/lending/db_loans.sql",
    layout=ContractDataLayout.of("Loan", KeyKind.U64, LOAN_LAYOUT),
    compared=(
        ComparedField("principal", Comparison.AMOUNT, repair_query="repairs/lending/loan_principal.sql"),
        ComparedField("outstanding", Comparison.AMOUNT, repair_query="repairs/lending/loan_outstanding.sql"),
        ComparedField(
            "status",
            Comparison.EXACT,
            drift_class=DriftClass.STATUS_MISMATCH,
            repair_query="repairs/lending/loan_status.sql",
        ),
        ComparedField("borrower", Comparison.ADDRESS),
    ),
    authority=Authority.CHAIN,
    amount_columns=("principal", "outstanding"),
    address_columns=("borrower",),
    db_invariants=LoanInvariants,
    chain_invariants=LoanInvariants,
    db_invariant_severity=Severity.WARN,
    chain_invariant_severity=Severity.CRITICAL,
)

POSITIONS_SPEC = ReconSpec(
    domain=DOMAIN,
    entity_type="liquidity_position",
    entity_id_prefix="position_",
    key_column="provider",
    snapshot_query="snapshots/lending/db_liquidity_positions.sql",
    layout=ContractDataLayout.of("Position", KeyKind.ADDRESS, POSITION_LAYOUT),
    compared=(
        ComparedField("deposited", Comparison.AMOUNT, repair_query="repairs/lending/position_deposited.sql"),
        ComparedField("shares", Comparison.AMOUNT, repair_query="repairs/lending/position_shares.sql"),
    ),
    authority=Authority.CHAIN,
    amount_columns=("deposited", "shares"),
    address_columns=("provider",),
    db_invariants=PositionInvariants,
    chain_invariants=PositionInvariants,
)

REPUTATION_SPEC = ReconSpec(
    domain=DOMAIN,
    entity_type="reputation",
    entity_id_prefix="reputation_",
    key_column="address",
    snapshot_query="snapshots/lending/db_reputation.sql",
    layout=ContractDataLayout.of("Reputation", KeyKind.ADDRESS, REPUTATION_LAYOUT),
    compared=(ComparedField("score", Comparison.AMOUNT, repair_query="repairs/lending/reputation_score.sql"),),
    authority=Authority.CHAIN,
    amount_columns=("score",),
    address_columns=("address",),
    db_invariants=ReputationInvariants,
    chain_invariants=ReputationInvariants,
)

LENDING_SPECS: tuple[ReconSpec, ...] = (LOANS_SPEC, POSITIONS_SPEC, REPUTATION_SPEC)
