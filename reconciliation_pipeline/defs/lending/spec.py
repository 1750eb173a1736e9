"""The lending reconciliation as data: CONTRACTS.md §2 against `loans`, `liquidity_positions`
and `reputation`.

Three entities share the generic machinery (snapshots, diff, invariants, field
repairs). What is genuinely lending-specific lives in `rules.py`: indexing the
contract's events per day (which is how the chain side learns of loans and
providers the database never recorded), provisional ids matched to their real
ids, pending transactions settled by `getTransaction`, and inserting loans the
app never wrote. Two scopes: the nightly sweep of a day, and the sweep of
provisional ids and pending transactions every 5 minutes.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from reconciliation_pipeline.chain.layouts import Kind, ScalarLayout, StructLayout, UnitEnum
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
    Hooks,
    IndexedKeys,
    Invariants,
    JobSpec,
    KeyKind,
    Layout,
    Partitioning,
    ScheduleSpec,
    Scope,
    Source,
)
from reconciliation_pipeline.defs.lending import rules
from reconciliation_pipeline.defs.lending.events import LOAN_STATUSES

CANONICAL_LOAN_STATUSES = tuple(s.lower() for s in LOAN_STATUSES)
U32_MAX = 2**32 - 1
CONTRACT = "lending_contract_id"

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


LOAN_TEXT = "principal >= 0, outstanding >= 0, exact integers, known status"
POSITION_TEXT = "deposited >= 0, shares >= 0, exact integers"
REPUTATION_TEXT = "score is an integer within u32"

LOANS_SOURCE = Source(
    name="loans",
    query="snapshots/lending/loans.sql",
    key_column="loan_id",
    key_kind=KeyKind.U64,
    entity_type="loan",
    entity_id_prefix="loan_",
    amount_columns=("principal", "outstanding"),
    invariants=Invariants(LoanInvariants, "loan_invariants", LOAN_TEXT, Severity.WARN),
    description="Loans as the lending app's database records them once they carry their on-chain id, one row per "
    "loan that existed at the end of the partition's day, with the hash of the transaction the app submitted. "
    "Amounts are exact integers in base units.",
)
POSITIONS_SOURCE = Source(
    name="liquidity_positions",
    query="snapshots/lending/liquidity_positions.sql",
    key_column="provider",
    key_kind=KeyKind.ADDRESS,
    entity_type="liquidity_position",
    entity_id_prefix="position_",
    amount_columns=("deposited", "shares"),
    invariants=Invariants(PositionInvariants, "position_invariants", POSITION_TEXT, Severity.WARN),
    windowed=False,
    description="Each liquidity provider's deposit and pool shares as the app's database records them.",
)
REPUTATION_SOURCE = Source(
    name="reputation",
    query="snapshots/lending/reputation.sql",
    key_column="address",
    key_kind=KeyKind.ADDRESS,
    entity_type="reputation",
    entity_id_prefix="reputation_",
    amount_columns=("score",),
    invariants=Invariants(ReputationInvariants, "reputation_invariants", REPUTATION_TEXT, Severity.WARN),
    windowed=False,
    description="Each borrower's reputation score as the app's database records it.",
)

LOANS = Entity(
    name="loans",
    entity_type="loan",
    source=LOANS_SOURCE,
    key_source=DataKey("Loan", contract=CONTRACT),
    layout=Layout.of(LOAN_LAYOUT),
    compared=(
        ComparedField("principal", Comparison.AMOUNT, repair_query="repairs/lending/loan_principal.sql"),
        ComparedField("outstanding", Comparison.AMOUNT, repair_query="repairs/lending/loan_outstanding.sql"),
        ComparedField("status", Comparison.EXACT, drift_class=DriftClass.STATUS_MISMATCH,
                      repair_query="repairs/lending/loan_status.sql"),
        ComparedField("borrower", Comparison.ADDRESS),
    ),
    authority=Authority.CHAIN,
    address_columns=("borrower",),
    chain_invariants=Invariants(LoanInvariants, "loan_invariants", LOAN_TEXT, Severity.CRITICAL),
    discovery=IndexedKeys("recon/queries/lending_indexed_loan_ids.sql", after="lending_events"),
    description="The lending contract's `Loan(u64)` entries for every loan the database knows plus every loan an "
    "indexed `loan_created` event announced before the partition's end (how loans the app never recorded are "
    "found). Read in batches of 200; unreadable entries keep their raw payload.",
)
POSITIONS = Entity(
    name="liquidity_positions",
    entity_type="liquidity_position",
    source=POSITIONS_SOURCE,
    key_source=DataKey("Position", contract=CONTRACT),
    layout=Layout.of(POSITION_LAYOUT),
    compared=(
        ComparedField("deposited", Comparison.AMOUNT, repair_query="repairs/lending/position_deposited.sql"),
        ComparedField("shares", Comparison.AMOUNT, repair_query="repairs/lending/position_shares.sql"),
    ),
    authority=Authority.CHAIN,
    address_columns=("provider",),
    chain_invariants=Invariants(PositionInvariants, "position_invariants", POSITION_TEXT, Severity.CRITICAL),
    discovery=IndexedKeys("recon/queries/lending_indexed_providers.sql", after="lending_events"),
    description="The lending contract's `Position(Address)` entries for every provider the database knows plus "
    "every provider an indexed deposit or withdraw event named.",
)
REPUTATION = Entity(
    name="reputation",
    entity_type="reputation",
    source=REPUTATION_SOURCE,
    key_source=DataKey("Reputation", contract=CONTRACT),
    layout=Layout.of(REPUTATION_LAYOUT),
    compared=(ComparedField("score", Comparison.AMOUNT, repair_query="repairs/lending/reputation_score.sql"),),
    authority=Authority.CHAIN,
    address_columns=("address",),
    chain_invariants=Invariants(ReputationInvariants, "reputation_invariants", REPUTATION_TEXT, Severity.CRITICAL),
    discovery=IndexedKeys("recon/queries/lending_indexed_borrowers.sql", after="lending_events"),
    description="The lending contract's `Reputation(Address)` scores for every address the database scores plus "
    "every borrower an indexed `loan_created` event named.",
)

SPEC = DomainSpec(
    domain="lending",
    description="the lending app's tables against the lending contract: loans, positions and scores that differ "
    "or exist on one side only, provisional loan ids still unresolved, and pending transactions the chain already "
    "settled or never saw.",
    sources=(LOANS_SOURCE, POSITIONS_SOURCE, REPUTATION_SOURCE),
    entities=(LOANS, POSITIONS, REPUTATION),
    steps=(rules.LENDING_EVENTS, rules.PROVISIONAL_LOANS, rules.PENDING_TRANSACTIONS),
    findings_asset="lending",
    repairs_asset="lending",
    hooks=Hooks(findings=rules.sweep_findings, exclude_chain_keys=rules.claimed_chain_loans, repairs=rules.repairs_plan),
    produces=(DriftClass.UNRESOLVED_PROVISIONAL_ID, DriftClass.ORPHANED_PENDING_TX),
    # The pool lends and takes deposits in the app's USDC (CONTRACTS.md names no other asset); pool
    # shares and reputation scores are not money. A pool in another token names it here.
    money=(
        MoneyField("loan", ("principal", "outstanding"), UsdcAsset()),
        MoneyField("liquidity_position", ("deposited",), UsdcAsset()),
    ),
    scopes=(
        Scope(name="nightly", group="lending", partitioning=Partitioning.DAILY, window=True, cadence=Cadence.NIGHTLY),
        Scope(
            name="sweep",
            group="lending_sweep",
            suffix="_sweep",
            entities=(),
            steps=(rules.PROVISIONAL_LOANS.name, rules.PENDING_TRANSACTIONS.name),
            budget="frequent",
            jobs=(JobSpec(
                name="lending_sweep",
                description="Every 5 minutes: pending lending transactions settled by getTransaction, provisional "
                "loan ids matched to loan_created events; findings persisted, repairs planned (applied when asked).",
                schedules=(ScheduleSpec("lending_sweep_schedule", "*/5 * * * *",
                                        "Every 5 minutes: settle orphaned pending transactions and resolve "
                                        "provisional loan ids."),),
            ),),
        ),
    ),
)
