"""The streams sweep split into shards, for fleets too large for one run.

The nightly `streams` assets read every stream in one run. Here each (day, shard)
partition snapshots, diffs and repairs only the streams whose id falls in its
shard (`partitions.shard_of`), so one day's sweep is `SHARD_COUNT` independent
runs that a distributed executor spreads over workers (see `deploy/README.md`).
Escrow solvency needs every stream of a token, so it is a per-day asset that
reads all shards of its day.

Findings land in `recon.discrepancies` under partition keys `<day>|<shard>` and
`<day>|escrow`: re-running one shard replaces only its rows, and each run
resolves only the incidents of the entities it checked, so shards never resolve
each other's. This group is an alternative to the nightly `streams` group, not
an addition: reconcile a day with one or the other, or its drift counts twice.
"""

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from reconciliation_pipeline.core.asset_support import RepairConfig, run_info
from reconciliation_pipeline.core.snapshots import snapshot_db
from reconciliation_pipeline.defs.streams.assets import (
    INVARIANTS_CHECK,
    SOLVENCY_CHECK,
    SPEC,
    chain_snapshot_result,
    checked_streams,
    checked_tokens,
    db_snapshot_result,
    escrow_domain_findings,
    escrow_result,
    persist_findings,
    repair_result,
    stream_findings,
)
from reconciliation_pipeline.partitions import SHARD_COUNT, daily_partitions, daily_sharded_partitions, shard_of
from reconciliation_pipeline.resources import (
    PostgresResource,
    ReconSettingsResource,
    SorobanRpcResource,
    StellarContractsResource,
)

GROUP = "streams_sharded"
SHARD_SPEC = replace(SPEC, snapshot_query="snapshots/streams/db_streams_shard.sql")
ESCROW_PARTITION = "escrow"
"""Second part of the escrow run's partition key (`<day>|escrow`), beside the shards' `<day>|<shard>`."""


def _shard(context: dg.AssetExecutionContext) -> int:
    key = daily_sharded_partitions.get_partition_key_from_str(str(context.partition_key))
    return int(key.keys_by_dimension["shard"])


def _all_shards(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One day's shards as one frame, keys in their canonical dtype (an empty shard's are not)."""
    frame = pd.concat([frames[key] for key in sorted(frames)], ignore_index=True)
    frame[SPEC.key_column] = SPEC.normalize_keys(frame[SPEC.key_column])
    return frame


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_sharded_partitions,
    kinds={"postgres", "pandas"},
    check_specs=[dg.AssetCheckSpec(INVARIANTS_CHECK, asset="db_streams_shard",
                                   description="total >= 0, released >= 0, released <= total, known status")],
)
# No return annotation: with check_specs Dagster reads one as the type of every output.
def db_streams_shard(context: dg.AssetExecutionContext, postgres: PostgresResource):  # noqa: ANN201
    """One shard of the escrow streams as the application database records them: the
    streams whose id modulo the shard count is this shard, that existed at the end of
    the partition's day. Amounts are exact integers in base units."""
    params = {"window_end": context.partition_time_window.end, "shard_count": SHARD_COUNT, "shard": _shard(context)}
    return db_snapshot_result(snapshot_db(postgres.engine, SHARD_SPEC, params))


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_sharded_partitions,
    kinds={"stellar", "pandas"},
    check_specs=[dg.AssetCheckSpec(INVARIANTS_CHECK, asset="chain_streams_shard",
                                   description="the contract's own invariants hold for every decoded stream")],
)
def chain_streams_shard(
    context: dg.AssetExecutionContext,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    db_streams_shard: pd.DataFrame,
):  # noqa: ANN201 - see db_streams_shard
    """The escrow contract's `Stream(u64)` entries of one shard: its database streams plus
    the streams of this shard created on chain in the RPC's retention window, read in
    batches of 200 with the ledger sequence each was read at."""
    shard = _shard(context)
    return chain_snapshot_result(
        context, soroban_rpc, contracts, db_streams_shard, keep_discovered=lambda ids: shard_of(ids) == shard
    )


@dg.asset(group_name=GROUP, partitions_def=daily_sharded_partitions, kinds={"postgres", "pandas"})
def stream_shard_discrepancies(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    db_streams_shard: pd.DataFrame,
    chain_streams_shard: pd.DataFrame,
) -> pd.DataFrame:
    """Every disagreement between one shard of the streams table and the escrow contract's
    streams, typed by drift class, persisted to `recon.discrepancies` under `<day>|<shard>`
    (replacing that shard's earlier findings) and folded into `recon.drift_incidents`."""
    started_at = datetime.now(UTC)
    findings = stream_findings(db_streams_shard, chain_streams_shard)
    checked, unchecked = checked_streams(db_streams_shard, chain_streams_shard)
    persist_findings(
        context, run_info(context), postgres, recon_settings, findings,
        checked=checked,
        unchecked=unchecked,
        ledger_sequence=chain_streams_shard.attrs.get("ledger_sequence"),
        snapshot_at=db_streams_shard.attrs.get("snapshot_at"),
        started_at=started_at,
    )
    return findings


@dg.asset(group_name=GROUP, partitions_def=daily_sharded_partitions, kinds={"postgres"})
def stream_shard_repairs(
    context: dg.AssetExecutionContext,
    config: RepairConfig,
    postgres: PostgresResource,
    stream_shard_discrepancies: pd.DataFrame,
) -> dg.MaterializeResult:
    """Repairs of one shard of the streams table toward the chain (authoritative) for
    `status` and `released`: planned into `recon.repairs`, applied with compare-and-swap
    when the run's config sets `apply` and not `dry_run`, each with its audit row."""
    return repair_result(context, config, postgres, stream_shard_discrepancies)


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_partitions,
    kinds={"stellar", "pandas"},
    check_specs=[dg.AssetCheckSpec(
        SOLVENCY_CHECK, asset="chain_stream_escrow_sharded",
        description="For each token, the escrow contract's balance covers Σ(total − released) of active and paused streams.",
    )],
)
def chain_stream_escrow_sharded(
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    db_streams_shard: dict[str, pd.DataFrame],
    chain_streams_shard: dict[str, pd.DataFrame],
):  # noqa: ANN201 - see db_streams_shard
    """The escrow contract's balance of each token its streams use, beside what active and
    paused streams of every shard of the day still owe according to the chain and to the
    database. Waits for all shards of its day: solvency needs every stream of a token."""
    # A day depends on every (day, shard) partition: Dagster infers the multi-to-single
    # dimension mapping on `date` and loads the shards as {partition key: frame}.
    result = escrow_result(soroban_rpc, contracts, _all_shards(chain_streams_shard), _all_shards(db_streams_shard))
    snapshots = [f.attrs["snapshot_at"] for f in db_streams_shard.values() if "snapshot_at" in f.attrs]
    ledgers = [f.attrs["ledger_sequence"] for f in chain_streams_shard.values() if f.attrs.get("ledger_sequence")]
    result.value.attrs.update(snapshot_at=min(snapshots, default=None), ledger_sequence=max(ledgers, default=None))
    return result


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres", "pandas"})
def stream_escrow_discrepancies(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    chain_stream_escrow_sharded: pd.DataFrame,
) -> pd.DataFrame:
    """Escrows that cannot cover what their streams owe, and escrow balances that could not
    be read, for the whole day: persisted to `recon.discrepancies` under `<day>|escrow`
    and folded into `recon.drift_incidents` (resolving only escrow incidents)."""
    started_at = datetime.now(UTC)
    findings = escrow_domain_findings(chain_stream_escrow_sharded)
    checked, unchecked = checked_tokens(chain_stream_escrow_sharded)
    run = replace(run_info(context), partition_key=f"{context.partition_key}|{ESCROW_PARTITION}")
    persist_findings(
        context, run, postgres, recon_settings, findings,
        checked=checked,
        unchecked=unchecked,
        ledger_sequence=chain_stream_escrow_sharded.attrs.get("ledger_sequence"),
        snapshot_at=chain_stream_escrow_sharded.attrs.get("snapshot_at"),
        started_at=started_at,
    )
    return findings


SHARD_ASSETS = [db_streams_shard, chain_streams_shard, stream_shard_discrepancies, stream_shard_repairs]
ESCROW_ASSETS = [chain_stream_escrow_sharded, stream_escrow_discrepancies]
SHARDED_STREAMS_ASSETS = [*SHARD_ASSETS, *ESCROW_ASSETS]

streams_sharded_sweep_job = dg.define_asset_job(
    name="streams_sharded_sweep",
    selection=dg.AssetSelection.assets(*SHARD_ASSETS),
    partitions_def=daily_sharded_partitions,
    description="Large fleets: one (day, shard) of the streams per run, snapshotted, diffed, persisted to "
    "recon.* and repairs planned; backfill a day's shards to fan the sweep out over workers, then run "
    "streams_sharded_escrow for the day. An alternative to the streams assets of nightly_reconciliation.",
)

streams_sharded_escrow_job = dg.define_asset_job(
    name="streams_sharded_escrow",
    selection=dg.AssetSelection.assets(*ESCROW_ASSETS),
    partitions_def=daily_partitions,
    description="Large fleets: escrow solvency for a day once all its streams_sharded_sweep shards are done.",
)

SHARDED_STREAMS_JOBS = [streams_sharded_sweep_job, streams_sharded_escrow_job]
