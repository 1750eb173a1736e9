"""Partitions and the jobs several domains join by cadence.

A scope declares its cadence; its assets carry the tag `recon/cadence` and
the shared jobs select by it, so a new domain joins the nightly job without
anyone editing a job list. Schedules start running by default: a
reconciliation nobody switched on finds nothing.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from reconciliation_pipeline.core.spec import Cadence, Partitioning
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, SWEEP_TAG

CADENCE_TAG = "recon/cadence"

daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
"""One partition per UTC day; the nightly job reconciles the day that just ended."""

SHARD_COUNT = 4
"""How many shards a large-fleet sweep splits a day's entities into."""

shard_partitions = dg.StaticPartitionsDefinition([str(shard) for shard in range(SHARD_COUNT)])
"""One partition per shard: each is its own run, so a sweep fans out across workers."""

daily_sharded_partitions = dg.MultiPartitionsDefinition({"date": daily_partitions, "shard": shard_partitions})
"""(UTC day, shard); keys read `2026-11-20|2`."""

PARTITIONS: dict[Partitioning, dg.PartitionsDefinition | None] = {
    Partitioning.NONE: None,
    Partitioning.DAILY: daily_partitions,
    Partitioning.DAILY_SHARDS: daily_sharded_partitions,
}


def shard_of(keys: pd.Series) -> pd.Series:
    """The shard of each u64 key: the key modulo `SHARD_COUNT`.

    Stream ids are sequential counters, so the remainder spreads them evenly
    without hashing, never changes for a key, and PostgreSQL computes the same
    value (`key % :shard_count`) so each shard's query reads only its own rows.
    """
    return (keys.astype("uint64") % SHARD_COUNT).astype("int64")


NIGHTLY_JOB = "nightly_reconciliation"
FREQUENT_JOB = "markets_balances_reconciliation"


def shared_jobs() -> dg.Definitions:
    """`nightly_reconciliation` (02:00 UTC, the day that just ended) and
    `markets_balances_reconciliation` (every 5 minutes, incrementally; in full at 02:30 UTC)."""
    nightly = dg.define_asset_job(
        name=NIGHTLY_JOB,
        selection=dg.AssetSelection.tag(CADENCE_TAG, Cadence.NIGHTLY.value),
        partitions_def=daily_partitions,
        description="Every daily-partitioned domain, both sides snapshotted, diffed and persisted to recon.*; "
        "repairs planned (applied only when the run config asks).",
    )
    frequent = dg.define_asset_job(
        name=FREQUENT_JOB,
        selection=dg.AssetSelection.tag(CADENCE_TAG, Cadence.FREQUENT.value),
        # One process: the bound on requests in flight holds for the whole job, and
        # step start-up does not eat into the run's time limit.
        executor_def=dg.in_process_executor,
        description="The every-5-minutes domains (markets, USDC balances): both sides read within the run time "
        "limit, incrementally from their watermarks, diffed and appended to recon.*; not partitioned.",
    )
    schedules = [
        dg.build_schedule_from_partitioned_job(
            nightly, hour_of_day=2, minute_of_hour=0, default_status=dg.DefaultScheduleStatus.RUNNING,
            description="02:00 UTC: reconcile the UTC day that just ended.",
        ),
        dg.ScheduleDefinition(
            name="markets_balances_every_5_minutes", job=frequent, cron_schedule="*/5 * * * *",
            execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Every 5 minutes: markets (odds, outcomes) and users' USDC balances, incrementally: only "
            "what changed since the last run (or has open incidents) is compared.",
        ),
        dg.ScheduleDefinition(
            name="markets_balances_nightly_full_sweep", job=frequent, cron_schedule="30 2 * * *",
            execution_timezone="UTC", tags={SWEEP_TAG: FULL_SWEEP}, default_status=dg.DefaultScheduleStatus.RUNNING,
            description="02:30 UTC: markets and USDC balances compared in full, whatever changed, which also "
            "catches app writes that did not move updated_at.",
        ),
    ]
    return dg.Definitions(jobs=[nightly, frequent], schedules=schedules)
