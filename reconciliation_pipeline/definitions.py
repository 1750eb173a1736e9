"""The one Definitions object: every domain's folder under `defs/` loaded, resources bound once.

Each `defs/<domain>/definitions.py` builds that domain's assets, checks, jobs and
schedules from its spec; `defs/shared_jobs` holds the jobs domains join by
cadence and `defs/alerting` the alert sensors. Project-wide policies are applied
here, once.
"""

from pathlib import Path

import dagster as dg

from reconciliation_pipeline.resources import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=build_resources()),
    )
