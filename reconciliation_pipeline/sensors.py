"""Sensors: alerting on drift incidents and on failed runs (see core/alerts.py)."""

from __future__ import annotations

from reconciliation_pipeline.core.alerts import drift_incident_alert_sensor, run_failure_alert_sensor

SENSORS = [drift_incident_alert_sensor, run_failure_alert_sensor]
