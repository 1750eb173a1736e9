"""Schedules."""

from __future__ import annotations

import dagster as dg

from reconciliation_pipeline.jobs import nightly_reconciliation_job

nightly_reconciliation_schedule = dg.build_schedule_from_partitioned_job(
    nightly_reconciliation_job,
    hour_of_day=2,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00 UTC: reconcile the UTC day that just ended.",
)
