"""Partitions and the jobs several domains join by cadence.

A scope declares its cadence; its assets carry the tag `recon/cadence` and
the shared jobs select by it, so a new domain joins the nightly job without
anyone editing a job list. Schedules start running by default: a
reconciliation nobody switched on finds nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from reconciliation_pipeline.core.spec import Cadence, Partitioning
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, SWEEP_TAG

CADENCE_TAG = "recon/cadence"

PARTITIONS_START_VARIABLE = "RECON_PARTITIONS_START"
DEFAULT_PARTITIONS_START = "-30d"
_DAYS_BACK = re.compile(r"^-(\d{1,5})d$")


def partitions_start(value: str, today: date) -> date:
    """The first daily partition `value` names: an ISO date, or `-<N>d`, N days before `today`."""
    days_back = _DAYS_BACK.match(value.strip())
    if days_back is not None:
        return today - timedelta(days=int(days_back.group(1)))
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{PARTITIONS_START_VARIABLE} must be a date (2026-01-01) or days back (-30d), "
                         f"not {value!r}") from None


def configured_partitions_start(environ: Mapping[str, str] = os.environ, now: datetime | None = None) -> date:
    """`RECON_PARTITIONS_START` (default 30 days back), resolved against today in UTC.

    The one setting read when the code location loads, not when a run starts: a
    partitions definition is part of the definitions' shape (the webserver, the
    daemon and every run build the same one), so no resource or EnvVar can carry
    it. With the relative default the start moves with the calendar: a run for
    the oldest day, offered by a webserver loaded before midnight UTC and started
    after it, fails on an unknown partition. Production sets a date.
    """
    today = (now or datetime.now(UTC)).date()
    return partitions_start(environ.get(PARTITIONS_START_VARIABLE, DEFAULT_PARTITIONS_START), today)


daily_partitions = dg.DailyPartitionsDefinition(start_date=configured_partitions_start().isoformat(), timezone="UTC")
"""One partition per UTC day from `RECON_PARTITIONS_START`; the nightly job reconciles the day that just ended."""

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
        "repairs planned (applied only when the run config asks). A backfill's days run at once.",
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
