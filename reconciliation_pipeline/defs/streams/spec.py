"""The streams (escrow) reconciliation as data: CONTRACTS.md §1 against `streams`."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from reconciliation_pipeline.chain.layouts import Kind, StructLayout, UnitEnum
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

STREAM_STATUSES = ("Active", "Paused", "Completed", "Cancelled")
CANONICAL_STATUSES = tuple(s.lower() for s in STREAM_STATUSES)
OWING_STATUSES = ("active", "paused")
"""Streams whose unreleased amount the escrow must still cover."""


STREAM_LAYOUT = StructLayout(
    fields={
        "sender": Kind.ADDRESS,
        "recipient": Kind.ADDRESS,
        "token": Kind.ADDRESS,
        "total": Kind.I128,
        "released": Kind.I128,
        "status": UnitEnum(STREAM_STATUSES),
    }
)
"""`Stream { sender, recipient, token, total, released, status }` (CONTRACTS.md §1)."""



class StreamEscrowInvariants(pa.DataFrameModel):
    """Escrow invariants that hold on both sides (CONTRACTS.md §1)."""

    total: Series[object] = pa.Field(ge=0)
    released: Series[object] = pa.Field(ge=0)
    status: Series[object] = pa.Field(isin=list(CANONICAL_STATUSES))

    @pa.check("total", "released", name="exact_integer_amount")
    def exact_integer_amount(cls, values: pd.Series) -> pd.Series:
        return exact_int_mask(values)

    @pa.dataframe_check(name="released_le_total", columns=("released", "total"))
    def released_le_total(cls, frame: pd.DataFrame, *, columns: tuple[str, str]) -> pd.Series:
        released, total = columns
        return (frame[released] <= frame[total]).astype(bool)

    class Config:
        strict = False


STREAMS_SPEC = ReconSpec(
    domain="streams",
    entity_type="stream",
    entity_id_prefix="stream_",
    key_column="stream_id",
    snapshot_query="snapshots/streams/db_streams.sql",
    layout=ContractDataLayout.of("Stream", KeyKind.U64, STREAM_LAYOUT),
    compared=(
        ComparedField("total", Comparison.AMOUNT),
        ComparedField("released", Comparison.AMOUNT, repair_query="repairs/streams/released.sql"),
        ComparedField(
            "status",
            Comparison.EXACT,
            drift_class=DriftClass.STATUS_MISMATCH,
            repair_query="repairs/streams/status.sql",
        ),
        ComparedField("sender", Comparison.ADDRESS),
        ComparedField("recipient", Comparison.ADDRESS),
        ComparedField("token", Comparison.ADDRESS),
    ),
    authority=Authority.CHAIN,
    amount_columns=("total", "released"),
    address_columns=("sender", "recipient", "token"),
    db_invariants=StreamEscrowInvariants,
    chain_invariants=StreamEscrowInvariants,
    db_invariant_severity=Severity.WARN,
    chain_invariant_severity=Severity.CRITICAL,
)
