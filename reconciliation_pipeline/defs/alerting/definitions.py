"""The alert sensors: drift incidents (routed, grouped per run and route), failed runs and runs
that never finished.

The routing, the channels and the once-only bookkeeping live in `core.alerts`; the routes come
from `ALERT_ROUTES_FILE` (`core.alert_routes`) or the defaults. A run's row in `recon.runs`
lives in `core.run_status`.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from reconciliation_pipeline.core import run_status
from reconciliation_pipeline.core.alerts import (
    AlertingResource,
    RunFailureAlert,
    alert_run_failure,
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
    description="Alerts on drift incidents as the alert routes say (by domain and severity, at once or once "
    "confirmed): one message per run and route, resolved notices, nothing while acknowledged or exempt; each "
    "incident occurrence once (recorded in recon.alerts).",
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
    description="Alerts the routes' run-failure channels when a run fails outright, and marks its recon.runs rows "
    "still 'running' failed. Drift found by a successful run is alerted from its incidents instead.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource,
                             alerting: AlertingResource) -> None:
    # A killed run never reached its last steps: its domains' rows become 'failed' here.
    unfinished = run_status.mark_run_failed(
        postgres.engine, context.dagster_run.run_id,
        f"the Dagster run failed before this domain finished: {context.failure_event.message or 'run failed'}")
    alert_run_failure(postgres.engine, alerting, run_failure_alert(context, tuple(unfinished)), context.log)


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
        alert = RunFailureAlert(job_name=row.job_name or "(unknown job)", run_id=row.run_id,
                                message=f"{row.domain} started {row.started_at.isoformat()} and never finished: "
                                        f"{reason}",
                                step_errors=(), unfinished_domains=(row.domain,))
        alert_run_failure(engine, alerting, alert, context.log)
        alerted += 1
    return dg.SensorResult(skip_reason=dg.SkipReason(f"{alerted} unfinished runs alerted"))


defs = dg.Definitions(sensors=[drift_incident_alert_sensor, run_failure_alert_sensor, unfinished_run_alert_sensor])
