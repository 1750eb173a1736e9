"""The streams (escrow) reconciliation as data: CONTRACTS.md §1 against `streams`.

One entity, `Stream(u64)` on the stream contract, in three scopes: the nightly
sweep of a day, an every-5-minutes increment from a watermark, and a sharded
sweep for fleets too large for one run. Escrow solvency (`rules.py`) needs
every stream of a token, so it runs where every stream is compared.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from reconciliation_pipeline.chain.layouts import Kind, StructLayout, UnitEnum
from reconciliation_pipeline.core.amounts import exact_int_mask
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.money import MoneyField, TokenColumn, TokenIsEntity
from reconciliation_pipeline.core.spec import (
    Aggregate,
    Authority,
    Cadence,
    ChangeEvents,
    ComparedField,
    Comparison,
    DataKey,
    DomainSpec,
    Entity,
    EventKeys,
    Incremental,
    Invariants,
    JobSpec,
    KeyKind,
    Layout,
    Partitioning,
    ScheduleSpec,
    Scope,
    Source,
)
from reconciliation_pipeline.defs.streams import rules

STREAM_STATUSES = ("Active", "Paused", "Completed", "Cancelled")
CANONICAL_STATUSES = tuple(s.lower() for s in STREAM_STATUSES)
STREAM_EVENTS = ("stream_created", "stream_released", "stream_cancelled")

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


ESCROW_INVARIANTS = "total >= 0, released >= 0, released <= total, known status"

STREAMS_SOURCE = Source(
    name="streams",
    query="snapshots/streams/streams.sql",
    key_column="stream_id",
    key_kind=KeyKind.U64,
    entity_type="stream",
    entity_id_prefix="stream_",
    amount_columns=("total", "released"),
    invariants=Invariants(StreamEscrowInvariants, "escrow_invariants", ESCROW_INVARIANTS, Severity.WARN),
    description="Escrow streams as the application database records them, one row per stream (in a nightly "
    "run: every stream that existed at the end of the partition's day). Amounts are exact integers in base units.",
)

STREAM = Entity(
    name="streams",
    entity_type="stream",
    source=STREAMS_SOURCE,
    key_source=DataKey("Stream", contract="stream_contract_id"),
    layout=Layout.of(STREAM_LAYOUT),
    compared=(
        ComparedField("total", Comparison.AMOUNT),
        ComparedField("released", Comparison.AMOUNT, repair_query="repairs/streams/released.sql"),
        ComparedField("status", Comparison.EXACT, drift_class=DriftClass.STATUS_MISMATCH,
                      repair_query="repairs/streams/status.sql"),
        ComparedField("sender", Comparison.ADDRESS),
        ComparedField("recipient", Comparison.ADDRESS),
        ComparedField("token", Comparison.ADDRESS),
    ),
    authority=Authority.CHAIN,
    address_columns=("sender", "recipient", "token"),
    chain_invariants=Invariants(StreamEscrowInvariants, "escrow_invariants",
                                "the contract's own invariants hold for every decoded stream", Severity.CRITICAL),
    discovery=EventKeys(contract="stream_contract_id", topics=("stream_created",)),
    description="The stream escrow contract's `Stream(u64)` entries for every stream the database knows plus every "
    "stream created on chain in the RPC's retention window (before the partition's end), read in batches of 200 "
    "with the ledger each was read at. Unreadable entries are kept with `read_status = error` and their payload.",
)

ESCROW_SOLVENCY = Aggregate(
    name="stream_escrow",
    run=rules.escrow_solvency,
    check="escrow_solvency",
    check_description="For each token, the escrow contract's balance covers Σ(total − released) of active and "
    "paused streams.",
    description="The escrow contract's balance of each token its streams use (its entry on the token's Stellar "
    "Asset Contract), beside what active and paused streams still owe according to the chain and to the database.",
    entities=("streams",),
    label="escrow",
)

SPEC = DomainSpec(
    domain="streams",
    description="the streams table against the stream escrow contract, and each token's escrow against what its "
    "streams still owe.",
    sources=(STREAMS_SOURCE,),
    entities=(STREAM,),
    aggregates=(ESCROW_SOLVENCY,),
    # Stream tokens are Stellar Asset Contracts (USDC, EURC): 7 decimals.
    money=(
        MoneyField("stream", ("total", "released"), TokenColumn(entity="streams", column="token")),
        MoneyField(rules.ESCROW_ENTITY_TYPE, (rules.ESCROW_FIELD,), TokenIsEntity()),
    ),
    findings_asset="stream",
    repairs_asset="stream",
    scopes=(
        Scope(name="nightly", group="streams", partitioning=Partitioning.DAILY, window=True, cadence=Cadence.NIGHTLY),
        Scope(
            name="incremental",
            group="streams_incremental",
            suffix="_incremental",
            incremental=Incremental(
                plan_asset="stream_changes",
                watermark_scope="stream",
                changes=ChangeEvents(contract="stream_contract_id", topics=STREAM_EVENTS, column="stream_id"),
                description="What changed since the last incremental streams run: the streams the contract's "
                "stream_created, stream_released and stream_cancelled events named since its watermark's ledger, "
                "and the streams with open incidents. A full sweep when there is no watermark, when the events are "
                "out of the RPC's retention, when the chain is behind the watermark or when the run is tagged "
                "recon/sweep=full.",
            ),
            repairs=False,
            budget="frequent",
            jobs=(JobSpec(
                name="streams_incremental",
                description="Every 5 minutes: the streams that changed since the last run (and those with open "
                "incidents) diffed against the escrow contract; the nightly streams run still sweeps everything.",
                schedules=(ScheduleSpec("streams_incremental_every_5_minutes", "*/5 * * * *",
                                        "Every 5 minutes: incremental streams reconciliation from its watermark."),),
            ),),
        ),
        Scope(
            name="sharded",
            group="streams_sharded",
            suffix="_shard",
            partitioning=Partitioning.DAILY_SHARDS,
            window=True,
            jobs=(
                JobSpec(
                    name="streams_sharded_sweep",
                    description="Large fleets: one (day, shard) of the streams per run, snapshotted, diffed, "
                    "persisted to recon.* and repairs planned; backfill a day's shards to fan the sweep out over "
                    "workers, then run streams_sharded_escrow for the day. An alternative to the streams assets of "
                    "nightly_reconciliation.",
                ),
                JobSpec(
                    name="streams_sharded_escrow",
                    description="Large fleets: escrow solvency for a day once all its streams_sharded_sweep shards "
                    "are done.",
                    partitioned_by_day=True,
                ),
            ),
        ),
    ),
)
