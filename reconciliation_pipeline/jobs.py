"""Jobs: what runs together."""

from __future__ import annotations

import dagster as dg

from reconciliation_pipeline.defs.lending.assets import LENDING_SWEEP_SELECTION
from reconciliation_pipeline.partitions import daily_partitions

nightly_reconciliation_job = dg.define_asset_job(
    name="nightly_reconciliation",
    selection=dg.AssetSelection.groups("streams", "lending", "streaks"),
    partitions_def=daily_partitions,
    description="Every daily-partitioned domain, both sides snapshotted, diffed and persisted to recon.*; "
    "repairs planned (applied only when the run config asks).",
)

markets_balances_job = dg.define_asset_job(
    name="markets_balances_reconciliation",
    selection=dg.AssetSelection.groups("markets", "balances"),
    # One process: the bound on requests in flight holds for the whole job, and
    # step start-up does not eat into the run's time limit.
    executor_def=dg.in_process_executor,
    description="Markets (odds, outcomes) and USDC balances: both sides read within the run time limit, "
    "diffed and appended to recon.*; not partitioned.",
)

lending_sweep_job = dg.define_asset_job(
    name="lending_sweep",
    selection=LENDING_SWEEP_SELECTION,
    description="Every 5 minutes: pending lending transactions settled by getTransaction, provisional loan ids "
    "matched to loan_created events; findings persisted, repairs planned (applied when asked).",
)
