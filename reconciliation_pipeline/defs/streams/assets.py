"""Streams (escrow) assets: both sides' snapshots, their diff and its repairs.

The steps are functions so the sharded sweep (`sharded.py`) runs the same code
on one shard of the streams at a time.
"""

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from stellar_sdk import scval, xdr

from reconciliation_pipeline.chain.reader import ChainReader
from reconciliation_pipeline.core import repairs
from reconciliation_pipeline.core.asset_support import (
    CHAIN,
    DATABASE,
    RepairConfig,
    batch_progress,
    invariants_check,
    markdown_table,
    repair_step,
    run_info,
)
from reconciliation_pipeline.core.diff import diff_snapshots, invariant_findings
from reconciliation_pipeline.core.drift_store import RunInfo, persist_domain_run
from reconciliation_pipeline.core.findings import concat_findings
from reconciliation_pipeline.core.metadata import findings_metadata, frame_metadata
from reconciliation_pipeline.core.snapshots import READ_ERROR, DbSnapshot, decoded_rows, snapshot_chain, snapshot_db
from reconciliation_pipeline.defs.streams.escrow import (
    ESCROW_ENTITY_TYPE,
    escrow_findings,
    escrow_read_error_findings,
    escrow_solvency,
    read_escrow_balances,
)
from reconciliation_pipeline.defs.streams.spec import STREAMS_SPEC
from reconciliation_pipeline.partitions import daily_partitions
from reconciliation_pipeline.resources import (
    PostgresResource,
    ReconSettingsResource,
    SorobanRpcResource,
    StellarContractsResource,
)

GROUP = "streams"
SPEC = STREAMS_SPEC
INVARIANTS_CHECK = "escrow_invariants"
SOLVENCY_CHECK = "escrow_solvency"
ESCROW_CLEAN = "All rows satisfy total >= 0, released >= 0, released <= total."
STREAM_CREATED = "stream_created"


def db_snapshot_result(snapshot: DbSnapshot) -> dg.MaterializeResult:
    """A database snapshot as the asset's value, with its metadata and invariants check."""
    frame = snapshot.frame
    frame.attrs["snapshot_at"] = snapshot.taken_at.isoformat()
    return dg.MaterializeResult(
        value=frame,
        metadata={**frame_metadata(frame), "snapshot_at": snapshot.taken_at.isoformat()},
        check_results=[invariants_check(INVARIANTS_CHECK, SPEC, SPEC.db_invariants, frame, DATABASE, ESCROW_CLEAN)],
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_partitions,
    kinds={"postgres", "pandas"},
    check_specs=[dg.AssetCheckSpec(INVARIANTS_CHECK, asset="db_streams",
                                   description="total >= 0, released >= 0, released <= total, known status")],
)
# No return annotation: with check_specs Dagster reads one as the type of every output.
def db_streams(context: dg.AssetExecutionContext, postgres: PostgresResource):  # noqa: ANN201
    """Escrow streams as the application database records them, one row per stream that
    existed at the end of the partition's day. Amounts are exact integers in base units."""
    return db_snapshot_result(snapshot_db(postgres.engine, SPEC, {"window_end": context.partition_time_window.end}))


def discover_chain_only_ids(
    context: dg.AssetExecutionContext, reader: ChainReader, contract_id: str
) -> list[int]:
    """Stream ids from `stream_created` events in the RPC's retention window that closed
    before the partition's end: the only way to find streams the database never heard of."""
    window_end = context.partition_time_window.end
    events, _ = reader.get_events(
        contract_ids=[contract_id],
        topics=[[scval.to_symbol(STREAM_CREATED).to_xdr(), "*"]],
    )
    ids = [
        scval.from_uint64(xdr.SCVal.from_xdr(e.topic[1]))
        for e in events
        if e.ledger_close_at.astimezone(UTC) < window_end
    ]
    context.log.info(f"{len(events)} stream_created events in the retention window; {len(ids)} before {window_end}")
    return ids


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_partitions,
    kinds={"stellar", "pandas"},
    check_specs=[dg.AssetCheckSpec(INVARIANTS_CHECK, asset="chain_streams",
                                   description="the contract's own invariants hold for every decoded stream")],
)
def chain_streams(
    context: dg.AssetExecutionContext,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    db_streams: pd.DataFrame,
):  # noqa: ANN201 - see db_streams
    """The stream escrow contract's `Stream(u64)` entries for every stream the database
    knows plus every stream created on chain in the RPC's retention window, read in
    batches of 200 with the ledger sequence each was read at. Unreadable entries are
    kept with `read_status = error` and their raw payload."""
    return chain_snapshot_result(context, soroban_rpc, contracts, db_streams)


def chain_snapshot_result(
    context: dg.AssetExecutionContext,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    db_streams: pd.DataFrame,
    keep_discovered: Callable[[pd.Series], pd.Series] | None = None,
) -> dg.MaterializeResult:
    """Reads the entries of the database's streams and of the streams discovered on chain
    (those `keep_discovered` marks, when given: a shard keeps its own), with the read's
    metadata and the chain-side invariants check."""
    with soroban_rpc.reader() as reader:
        discovered = pd.Series(discover_chain_only_ids(context, reader, contracts.stream_contract_id), dtype=object)
        if keep_discovered is not None:
            discovered = discovered[keep_discovered(discovered)]
        ids = [*db_streams["stream_id"].map(int), *discovered.map(int)]
        frame = snapshot_chain(
            reader, SPEC, contracts.stream_contract_id, ids,
            progress=batch_progress(context, context.asset_key.to_user_string()),
        )
    statuses = frame["read_status"].value_counts()
    ledger = frame.attrs.get("ledger_sequence")
    return dg.MaterializeResult(
        value=frame,
        metadata={
            **frame_metadata(frame),
            "ledger_sequence": ledger,
            "rpc_requests": frame.attrs.get("rpc_requests", 0),
            "failed_batches": frame.attrs.get("failed_batches", 0),
            "entries_ok": int(statuses.get("ok", 0)),
            "entries_missing": int(statuses.get("missing", 0)),
            "entries_unreadable": int(statuses.get("error", 0)),
        },
        check_results=[invariants_check(INVARIANTS_CHECK, SPEC, SPEC.chain_invariants, decoded_rows(frame), CHAIN, ESCROW_CLEAN)],
    )


def _solvency_check(solvency: pd.DataFrame) -> dg.AssetCheckResult:
    insolvent = solvency[solvency["solvent"].map(lambda s: s is False)]
    unknown = solvency[solvency["solvent"].isna()]
    return dg.AssetCheckResult(
        check_name=SOLVENCY_CHECK,
        passed=insolvent.empty and unknown.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "insolvent_tokens": len(insolvent),
            "unreadable_balances": len(unknown),
            "shortfall": markdown_table(insolvent[["token", "balance", "owed_on_chain", "surplus"]],
                                        "Every escrow covers what it owes."),
        },
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_partitions,
    kinds={"stellar", "pandas"},
    check_specs=[dg.AssetCheckSpec(
        SOLVENCY_CHECK, asset="chain_stream_escrow",
        description="For each token, the escrow contract's balance covers Σ(total − released) of active and paused streams.",
    )],
)
def chain_stream_escrow(
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    chain_streams: pd.DataFrame,
    db_streams: pd.DataFrame,
):  # noqa: ANN201 - see db_streams
    """The escrow contract's balance of each token its streams use (its entry on the
    token's Stellar Asset Contract), beside what active and paused streams still owe
    according to the chain and to the database."""
    return escrow_result(soroban_rpc, contracts, chain_streams, db_streams)


def escrow_result(
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    chain_streams: pd.DataFrame,
    db_streams: pd.DataFrame,
) -> dg.MaterializeResult:
    """Reads the escrow's balance of every token the streams use and sets it against what
    they owe, with the solvency check; needs every stream of each token."""
    tokens = sorted(set(decoded_rows(chain_streams)["token"]) | set(db_streams["token"]))
    tokens = [t for t in tokens if isinstance(t, str) and t.startswith("C")]
    with soroban_rpc.reader() as reader:
        balances = read_escrow_balances(reader, contracts.stream_contract_id, tokens)
    solvency = escrow_solvency(chain_streams, db_streams, balances)
    return dg.MaterializeResult(
        value=solvency,
        metadata={
            **frame_metadata(solvency),
            "tokens": len(solvency),
            "insolvent_tokens": int(solvency["solvent"].map(lambda s: s is False).sum()),
            "escrow": markdown_table(solvency[["token", "balance", "owed_on_chain", "owed_in_db", "surplus"]],
                                     "No tokens."),
        },
        check_results=[_solvency_check(solvency)],
    )


def stream_findings(db_streams: pd.DataFrame, chain_streams: pd.DataFrame) -> pd.DataFrame:
    """What the streams themselves show: the diff and both sides' invariants."""
    assert SPEC.db_invariants is not None and SPEC.chain_invariants is not None
    return concat_findings(
        [
            diff_snapshots(SPEC, db_streams, chain_streams),
            invariant_findings(SPEC, SPEC.db_invariants, db_streams, side="database",
                               severity=SPEC.db_invariant_severity),
            invariant_findings(SPEC, SPEC.chain_invariants, decoded_rows(chain_streams), side="chain",
                               severity=SPEC.chain_invariant_severity),
        ]
    )


def escrow_domain_findings(escrow: pd.DataFrame) -> pd.DataFrame:
    """What the escrow shows: insolvent tokens and balances that could not be read."""
    return concat_findings([escrow_findings(SPEC.domain, escrow), escrow_read_error_findings(SPEC.domain, escrow)])


def checked_streams(db: pd.DataFrame, chain: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(entity_type, entity_id) of every stream compared this run, and how many could not be."""
    unreadable = chain.loc[chain["read_status"] == READ_ERROR, "stream_id"]
    keys = pd.Index(db["stream_id"]).union(pd.Index(chain["stream_id"])).difference(pd.Index(unreadable))
    return pd.DataFrame({"entity_type": SPEC.entity_type, "entity_id": SPEC.entity_ids(pd.Series(keys))}), len(unreadable)


def checked_tokens(escrow: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(entity_type, entity_id) of every escrow token checked this run, and how many could not be."""
    readable = escrow[escrow["read_status"] != READ_ERROR]
    tokens = pd.DataFrame({"entity_type": ESCROW_ENTITY_TYPE, "entity_id": readable["token"].astype(object)})
    return tokens, len(escrow) - len(readable)


def persist_findings(
    context: dg.AssetExecutionContext,
    run: RunInfo,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    findings: pd.DataFrame,
    *,
    checked: pd.DataFrame,
    unchecked: int,
    ledger_sequence: int | None,
    snapshot_at: str | None,
    started_at: datetime,
) -> None:
    """Persists the findings under the run's partition key, folds them into incidents
    (resolving only those of `checked` entities) and reports both on the asset."""
    summary = persist_domain_run(
        postgres.engine,
        run,
        SPEC.domain,
        findings,
        checked=checked,
        unchecked_count=unchecked,
        ledger_sequence=ledger_sequence,
        db_snapshot_at=datetime.fromisoformat(snapshot_at) if snapshot_at else None,
        started_at=started_at,
        policy=recon_settings.incident_policy(),
    )
    context.log.info(
        f"{context.asset_key.to_user_string()}: {summary.findings} findings ({summary.status}); "
        f"incidents confirmed {summary.confirmed}, resolved {summary.resolved}"
    )
    context.add_output_metadata(
        {
            **findings_metadata(findings),
            "run_status": summary.status,
            "entities_checked": len(checked),
            "entities_unchecked": unchecked,
            "incidents_confirmed": summary.confirmed,
            "incidents_resolved": summary.resolved,
            "ledger_sequence": ledger_sequence,
        }
    )


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres", "pandas"})
def stream_discrepancies(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    db_streams: pd.DataFrame,
    chain_streams: pd.DataFrame,
    chain_stream_escrow: pd.DataFrame,
) -> pd.DataFrame:
    """Every disagreement between the streams table and the escrow contract, typed by
    drift class, persisted to `recon.discrepancies` (replacing this partition's earlier
    findings) and folded into `recon.drift_incidents`."""
    started_at = datetime.now(UTC)
    findings = concat_findings([stream_findings(db_streams, chain_streams), escrow_domain_findings(chain_stream_escrow)])
    streams, unreadable_streams = checked_streams(db_streams, chain_streams)
    tokens, unreadable_tokens = checked_tokens(chain_stream_escrow)
    persist_findings(
        context, run_info(context), postgres, recon_settings, findings,
        checked=pd.concat([streams, tokens], ignore_index=True),
        unchecked=unreadable_streams + unreadable_tokens,
        ledger_sequence=chain_streams.attrs.get("ledger_sequence"),
        snapshot_at=db_streams.attrs.get("snapshot_at"),
        started_at=started_at,
    )
    return findings


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres"})
def stream_repairs(
    context: dg.AssetExecutionContext,
    config: RepairConfig,
    postgres: PostgresResource,
    stream_discrepancies: pd.DataFrame,
) -> dg.MaterializeResult:
    """Repairs of the streams table toward the chain (authoritative) for `status` and
    `released`: planned into `recon.repairs`, applied with compare-and-swap when the
    run's config sets `apply` and not `dry_run`, each with its audit row."""
    return repair_result(context, config, postgres, stream_discrepancies)


def repair_result(
    context: dg.AssetExecutionContext,
    config: RepairConfig,
    postgres: PostgresResource,
    discrepancies: pd.DataFrame,
) -> dg.MaterializeResult:
    """Plans the repairs the findings call for, applies them when asked, and reports them."""
    return repair_step(context, config, postgres.engine, SPEC.domain, repairs.plan_repairs(SPEC, discrepancies))


STREAMS_ASSETS = [db_streams, chain_streams, chain_stream_escrow, stream_discrepancies, stream_repairs]
