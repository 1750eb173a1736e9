"""The alert sensors: drift incidents (CRITICAL at once, others once confirmed), failed runs and
runs that never finished.

The routing, the sinks and the once-only bookkeeping live in `core.alerts`; a run's row in
`recon.runs` lives in `core.run_status`.
"""

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg

from reconciliation_pipeline.core import run_status
from reconciliation_pipeline.core.alerts import (
    LOG_SINK,
    WEBHOOK_SINK,
    AlertingResource,
    UnfinishedRunAlert,
    dispatch_incident_alerts,
    run_failure_alert,
)
from reconciliation_pipeline.resources import PostgresResource

UNFINISHED_GRACE = timedelta(minutes=2)
"""A row younger than this may belong to a run whose first event is still being written."""


@dg.sensor(
    name="drift_incident_alerts",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on drift incidents: CRITICAL at once, other severities once confirmed; "
    "each incident occurrence once (recorded in recon.alerts).",
)
def drift_incident_alert_sensor(
    context: dg.SensorEvaluationContext,
    postgres: PostgresResource,
    alerting: AlertingResource,
) -> dg.SensorResult:
    outcome = dispatch_incident_alerts(postgres.engine, alerting, context.log, context.cursor)
    return dg.SensorResult(cursor=outcome.cursor, skip_reason=dg.SkipReason(outcome.summary))


@dg.run_failure_sensor(
    name="run_failure_alerts",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Runs executed in their own process (`recon demo`, `dagster job execute`) belong to no code
    # location; without this the sensor never sees them fail.
    monitor_all_code_locations=True,
    description="Alerts (log and webhook) when a run fails outright. Drift found by a successful "
    "run is alerted from its incidents instead.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource,
                             alerting: AlertingResource) -> None:
    # A killed run never reached its last steps: its domains' rows become 'failed' here.
    unfinished = run_status.mark_run_failed(
        postgres.engine, context.dagster_run.run_id,
        f"the Dagster run failed before this domain finished: {context.failure_event.message or 'run failed'}")
    alert = run_failure_alert(context, tuple(unfinished))
    alerting.deliver((LOG_SINK, WEBHOOK_SINK), logging.ERROR, alert.record(), alert.webhook_payload(), context.log)


def _why_unfinished(status: dg.DagsterRunStatus | None) -> str | None:
    """Why a row still `running` will never finish, given its Dagster run's status (None: unknown run)."""
    if status is None:
        return "the Dagster instance has no such run (deleted, or run on another instance)"
    if status == dg.DagsterRunStatus.SUCCESS:
        return "the Dagster run succeeded without running this domain's last steps (a partial selection)"
    if status == dg.DagsterRunStatus.CANCELED:
        return "the Dagster run was canceled before this domain finished"
    return None  # in progress (run monitoring fails it if its worker dies), or failed (run_failure_alerts)


@dg.sensor(
    name="unfinished_run_alerts",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks recon.runs rows left 'running' by a Dagster run that ended without finishing them (or "
    "that the instance no longer knows) as failed, and alerts once per row.",
)
def unfinished_run_alert_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource,
                                alerting: AlertingResource) -> dg.SensorResult:
    engine = postgres.engine
    alerted = 0
    for row in run_status.unfinished_runs(engine, before=datetime.now(UTC) - UNFINISHED_GRACE):
        dagster_run = context.instance.get_run_by_id(row.run_id)
        reason = _why_unfinished(dagster_run.status if dagster_run is not None else None)
        if reason is None or not run_status.mark_failed(engine, row.run_id, row.domain, reason):
            continue
        alert = UnfinishedRunAlert(row.run_id, row.domain, row.job_name, row.started_at, reason)
        alerting.deliver((LOG_SINK, WEBHOOK_SINK), logging.ERROR, alert.record(), alert.webhook_payload(),
                         context.log)
        alerted += 1
    return dg.SensorResult(skip_reason=dg.SkipReason(f"{alerted} unfinished runs alerted"))


defs = dg.Definitions(sensors=[drift_incident_alert_sensor, run_failure_alert_sensor, unfinished_run_alert_sensor])
