"""Incremental streams reconciliation for the 5-minute cadence.

The nightly `streams` assets sweep every stream; this run compares only the
streams that may have changed since its watermark (`recon.sweep_watermarks`):
database rows updated since the last snapshot (minus an overlap for late
commits), streams named by the contract's events since the last ledger scanned,
and streams with unresolved incidents (so those can resolve). It diffs them with
the same functions as the nightly run and resolves only the incidents of the
streams it compared. With no watermark, when the watermark's ledger has left the
RPC's retention window, when the chain is behind the watermark (a reset network)
or when the run is tagged `recon/sweep=full`, it sweeps everything once and starts
again from there.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from stellar_sdk import scval, xdr

from reconciliation_pipeline.chain.reader import ChainReader, RetentionWindowError
from reconciliation_pipeline.core.asset_support import batch_progress, run_info
from reconciliation_pipeline.core.drift_store import persist_domain_run
from reconciliation_pipeline.core.metadata import persisted_run_metadata
from reconciliation_pipeline.core.snapshots import snapshot_chain, snapshot_db
from reconciliation_pipeline.core.watermarks import (
    FULL_SWEEP,
    INCREMENTAL_SWEEP,
    SweepPlan,
    open_incident_keys,
    plan_sweep,
    write_watermark,
)
from reconciliation_pipeline.defs.streams.assets import SPEC, checked_streams, stream_findings
from reconciliation_pipeline.resources import (
    PostgresResource,
    ReconSettingsResource,
    SorobanRpcResource,
    StellarContractsResource,
)

GROUP = "streams_incremental"
SCOPE = SPEC.entity_type
CHANGED_SPEC = replace(SPEC, snapshot_query="snapshots/streams/db_streams_changed.sql")
STREAM_EVENTS = ("stream_created", "stream_released", "stream_cancelled")
ESCROW_SKIPPED = "skipped: solvency needs every stream of a token; the nightly streams run checks it"


@dataclass(frozen=True)
class ChainChanges:
    """What the chain's events say changed, and whether the run must sweep everything."""

    mode: str
    reason: str | None
    from_ledger: int | None
    """First ledger scanned; None for the whole retention window (a full sweep)."""
    to_ledger: int
    """Events up to and including this ledger have been scanned: the next watermark."""
    stream_ids: pd.Series


def event_stream_ids(reader: ChainReader, contract_id: str, start_ledger: int | None) -> tuple[pd.Series, int]:
    """Ids of the streams the contract created, released or cancelled from `start_ledger`
    (the whole retention window when None), and the latest ledger scanned."""
    topics = [[scval.to_symbol(name).to_xdr(), "*"] for name in STREAM_EVENTS]
    events, latest = reader.get_events(contract_ids=[contract_id], topics=topics, start_ledger=start_ledger)
    ids = pd.Series([scval.from_uint64(xdr.SCVal.from_xdr(e.topic[1])) for e in events], dtype=object)
    return SPEC.normalize_keys(ids).drop_duplicates(), latest


def chain_changes(reader: ChainReader, contract_id: str, plan: SweepPlan, latest_ledger: int) -> ChainChanges:
    """Streams named by events since the watermark's ledger; a full sweep when the plan is
    one (no watermark, the run tagged full, a chain behind the watermark) or when the
    watermark's ledger is no longer retained (events may have been missed)."""
    watermark = plan.watermark
    reason = plan.reason
    if watermark is not None:
        start = watermark.ledger_sequence + 1
        if start > latest_ledger:
            no_ids = SPEC.normalize_keys(pd.Series([], dtype=object))
            return ChainChanges(INCREMENTAL_SWEEP, None, start, watermark.ledger_sequence, no_ids)
        try:
            ids, latest = event_stream_ids(reader, contract_id, start)
            return ChainChanges(INCREMENTAL_SWEEP, None, start, latest, ids)
        except RetentionWindowError as error:
            reason = f"watermark ledger {watermark.ledger_sequence} is out of the RPC's retention: {error}"
    ids, latest = event_stream_ids(reader, contract_id, None)
    return ChainChanges(FULL_SWEEP, reason, None, latest, ids)


@dg.asset(group_name=GROUP, kinds={"postgres", "stellar", "pandas"})
def stream_incremental_discrepancies(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    recon_settings: ReconSettingsResource,
) -> dg.MaterializeResult:
    """Disagreements between the streams table and the escrow contract among the streams
    that changed since the last incremental run (or with open incidents), every 5 minutes:
    the same drift classes as the nightly run, persisted to `recon.discrepancies` and
    folded into `recon.drift_incidents`, resolving only incidents of streams it compared.
    Escrow solvency needs every stream, so it is left to the nightly run."""
    started_at = datetime.now(UTC)
    engine = postgres.engine
    with soroban_rpc.reader() as reader:
        latest = reader.latest_ledger()
        plan = plan_sweep(engine, SPEC.domain, SCOPE, context.run.tags, latest)
        changes = chain_changes(reader, contracts.stream_contract_id, plan, latest)
        incident_ids = open_incident_keys(engine, SPEC)
        since = None if changes.mode == FULL_SWEEP or plan.watermark is None else plan.watermark.db_since
        named = pd.Index(changes.stream_ids).union(pd.Index(incident_ids))
        snapshot = snapshot_db(engine, CHANGED_SPEC, {"since": since, "ids": [str(k) for k in named]})
        db = snapshot.frame
        keys = pd.Index(db[SPEC.key_column]).union(named)
        chain = snapshot_chain(reader, SPEC, contracts.stream_contract_id, [int(k) for k in keys],
                               progress=batch_progress(context, context.asset_key.to_user_string()))
    findings = stream_findings(db, chain)
    checked, unchecked = checked_streams(db, chain)
    ledger_sequence = chain.attrs.get("ledger_sequence") or changes.to_ledger
    summary = persist_domain_run(
        engine, run_info(context), SPEC.domain, findings,
        checked=checked,
        unchecked_count=unchecked,
        ledger_sequence=ledger_sequence,
        db_snapshot_at=snapshot.taken_at,
        started_at=started_at,
        policy=recon_settings.incident_policy(),
    )
    # Events are scanned before the entries are read, so the watermark is the scan's
    # ledger: a change in a later ledger is picked up again by the next run.
    write_watermark(engine, SPEC.domain, SCOPE, context.run_id, changes.to_ledger, snapshot.taken_at)
    db_changed = len(db) if since is None else int((pd.to_datetime(db["updated_at"], utc=True) > since).sum())
    context.log.info(
        f"{changes.mode} run ({changes.reason or 'since the watermark'}): {len(keys)} streams checked, "
        f"{summary.findings} findings; incidents resolved {summary.resolved}"
    )
    return dg.MaterializeResult(
        value=findings,
        metadata={
            **persisted_run_metadata(findings, summary, len(checked), unchecked),
            "mode": changes.mode,
            "full_sweep_reason": changes.reason,
            "changed_keys/db_rows": db_changed,
            "changed_keys/events": len(changes.stream_ids),
            "changed_keys/open_incidents": len(incident_ids),
            "db_since": since.isoformat() if since else None,
            "ledger_from": changes.from_ledger,
            "ledger_to": changes.to_ledger,
            "ledger_sequence": ledger_sequence,
            "rpc_requests": chain.attrs.get("rpc_requests", 0),
            "escrow_solvency": ESCROW_SKIPPED,
        },
    )


streams_incremental_job = dg.define_asset_job(
    name="streams_incremental",
    selection=dg.AssetSelection.groups(GROUP),
    description="Every 5 minutes: the streams that changed since the last run (and those with open "
    "incidents) diffed against the escrow contract; the nightly streams run still sweeps everything.",
)

streams_incremental_schedule = dg.ScheduleDefinition(
    name="streams_incremental_every_5_minutes",
    job=streams_incremental_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: incremental streams reconciliation from its watermark.",
)

INCREMENTAL_STREAMS_ASSETS = [stream_incremental_discrepancies]
