"""The alert sensors: drift incidents (routed, grouped per run and route) and failed runs.

The routing, the channels and the once-only bookkeeping live in `core.alerts`;
the routes come from `ALERT_ROUTES_FILE` (`core.alert_routes`) or the defaults.
"""

import dagster as dg

from reconciliation_pipeline.core.alerts import (
    AlertingResource,
    alert_run_failure,
    dispatch_incident_alerts,
    run_failure_alert,
)
from reconciliation_pipeline.resources import PostgresResource


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
    description="Alerts the routes' run-failure channels when a run fails outright. Drift found by a "
    "successful run is alerted from its incidents instead.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource,
                             alerting: AlertingResource) -> None:
    alert_run_failure(postgres.engine, alerting, run_failure_alert(context), context.log)


defs = dg.Definitions(sensors=[drift_incident_alert_sensor, run_failure_alert_sensor])
