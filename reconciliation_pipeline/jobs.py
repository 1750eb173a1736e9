"""Jobs: what runs together."""

from __future__ import annotations

import dagster as dg

from reconciliation_pipeline.defs.lending.assets import LENDING_SWEEP_SELECTION
from reconciliation_pipeline.partitions import daily_partitions

nightly_reconciliation_job = dg.define_asset_job(
    name="nightly_reconciliation",
    selection=dg.AssetSelection.groups("streams", "lending"),
    partitions_def=daily_partitions,
    description="Every daily-partitioned domain, both sides snapshotted, diffed and persisted to recon.*; "
    "repairs planned (applied only when the run config asks).",
)

lending_sweep_job = dg.define_asset_job(
    name="lending_sweep",
    selection=LENDING_SWEEP_SELECTION,
    description="Every 5 minutes: pending lending transactions settled by getTransaction, provisional loan ids "
    "matched to loan_created events; findings persisted, repairs planned (applied when asked).",
)
