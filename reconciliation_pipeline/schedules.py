"""Schedules. All start running by default: a reconciliation nobody switched on finds nothing."""

from __future__ import annotations

import dagster as dg

from reconciliation_pipeline.core.watermarks import FULL_SWEEP, SWEEP_TAG
from reconciliation_pipeline.jobs import lending_sweep_job, markets_balances_job, nightly_reconciliation_job

nightly_reconciliation_schedule = dg.build_schedule_from_partitioned_job(
    nightly_reconciliation_job,
    hour_of_day=2,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00 UTC: reconcile the UTC day that just ended.",
)

lending_sweep_schedule = dg.ScheduleDefinition(
    name="lending_sweep_schedule",
    job=lending_sweep_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: settle orphaned pending transactions and resolve provisional loan ids.",
)

markets_balances_schedule = dg.ScheduleDefinition(
    name="markets_balances_every_5_minutes",
    job=markets_balances_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: markets (odds, outcomes) and users' USDC balances, incrementally: every "
    "entry is read, only those modified since last compared (or whose row changed, or with open incidents) "
    "are decoded and diffed.",
)

markets_balances_full_sweep_schedule = dg.ScheduleDefinition(
    name="markets_balances_nightly_full_sweep",
    job=markets_balances_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    tags={SWEEP_TAG: FULL_SWEEP},
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:30 UTC: markets and USDC balances compared in full, whatever changed, which also catches "
    "app writes that did not move updated_at.",
)
