"""The alert sensors: drift incidents (CRITICAL at once, others once confirmed) and failed runs.

The routing, the sinks and the once-only bookkeeping live in `core.alerts`.
"""

import logging

import dagster as dg

from reconciliation_pipeline.core.alerts import (
    LOG_SINK,
    WEBHOOK_SINK,
    AlertingResource,
    dispatch_incident_alerts,
    run_failure_alert,
)
from reconciliation_pipeline.resources import PostgresResource


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
    description="Alerts (log and webhook) when a run fails outright. Drift found by a successful "
    "run is alerted from its incidents instead.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerting: AlertingResource) -> None:
    alert = run_failure_alert(context)
    alerting.deliver((LOG_SINK, WEBHOOK_SINK), logging.ERROR, alert.record(), alert.webhook_payload(), context.log)


defs = dg.Definitions(sensors=[drift_incident_alert_sensor, run_failure_alert_sensor])
