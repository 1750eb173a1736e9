"""The jobs several domains join by cadence (nightly, every 5 minutes) and their schedules."""

from reconciliation_pipeline.core.cadences import shared_jobs

defs = shared_jobs()
