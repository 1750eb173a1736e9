"""The pipeline as a code location whose steps run on Celery workers.

Every step of every run (a shard's database snapshot, chain read, diff and
repairs; a day's escrow) is a Celery task that any worker takes, so the runs of
a sharded backfill spread over every machine running a worker. Needs
`dagster-celery`, which is not a project dependency: see deploy/README.md.
"""

import dagster as dg
from dagster_celery import celery_executor

from reconciliation_pipeline import definitions as pipeline

# Read from the environment when a run starts, so launches (and asset backfills,
# which take no run config) need no executor config.
celery = celery_executor.configured(
    {"broker": {"env": "CELERY_BROKER_URL"}, "backend": {"env": "CELERY_BACKEND_URL"}},
    name="celery",
)



@dg.definitions
def defs() -> dg.Definitions:
    """The pipeline's definitions (its defs folder and resources) run on Celery workers."""
    return pipeline.pipeline_definitions(executor=celery)
