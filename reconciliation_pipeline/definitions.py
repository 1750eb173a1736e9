"""The one Definitions object: every domain's folder under `defs/` loaded, resources bound once.

Each `defs/<domain>/definitions.py` builds that domain's assets, checks, jobs and
schedules from its spec; `defs/shared_jobs` holds the jobs domains join by
cadence and `defs/alerting` the alert sensors. Project-wide policies are applied
here, once: the resources, and the executor (`core.execution`: in-process or one
process per step, as `RECON_EXECUTOR` says when a run starts).
"""

from pathlib import Path

import dagster as dg

from reconciliation_pipeline.core.execution import recon_executor
from reconciliation_pipeline.resources import build_resources


def pipeline_definitions(executor: dg.ExecutorDefinition = recon_executor) -> dg.Definitions:
    """Every domain, the resources and `executor` (a distributed deployment passes its own)."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=build_resources(), executor=executor),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return pipeline_definitions()
