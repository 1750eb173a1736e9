"""Jobs: what runs together."""

from __future__ import annotations

import dagster as dg

from reconciliation_pipeline.partitions import daily_partitions

nightly_reconciliation_job = dg.define_asset_job(
    name="nightly_reconciliation",
    selection=dg.AssetSelection.groups("streams"),
    partitions_def=daily_partitions,
    description="Every daily-partitioned domain, both sides snapshotted, diffed and persisted to recon.*; "
    "repairs planned (applied only when the run config asks).",
)
