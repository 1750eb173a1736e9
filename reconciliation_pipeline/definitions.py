"""The one Definitions object: every asset group, check, job, schedule, sensor and resource."""

from __future__ import annotations

import dagster as dg

from reconciliation_pipeline.defs.balances.assets import BALANCES_ASSETS
from reconciliation_pipeline.defs.lending.assets import LENDING_ASSETS, LENDING_SWEEP_ASSETS
from reconciliation_pipeline.defs.markets.assets import MARKETS_ASSETS
from reconciliation_pipeline.defs.streaks.assets import STREAKS_ASSETS
from reconciliation_pipeline.defs.streaks.sensors import streak_change_sensor, streak_reconciliation_job
from reconciliation_pipeline.defs.streams.assets import STREAMS_ASSETS
from reconciliation_pipeline.defs.streams.incremental import (
    INCREMENTAL_STREAMS_ASSETS,
    streams_incremental_job,
    streams_incremental_schedule,
)
from reconciliation_pipeline.defs.streams.sharded import SHARDED_STREAMS_ASSETS, SHARDED_STREAMS_JOBS
from reconciliation_pipeline.jobs import lending_sweep_job, markets_balances_job, nightly_reconciliation_job
from reconciliation_pipeline.resources import build_resources
from reconciliation_pipeline.schedules import (
    lending_sweep_schedule,
    markets_balances_full_sweep_schedule,
    markets_balances_schedule,
    nightly_reconciliation_schedule,
)
from reconciliation_pipeline.sensors import SENSORS

defs = dg.Definitions(
    assets=[*STREAMS_ASSETS, *SHARDED_STREAMS_ASSETS, *INCREMENTAL_STREAMS_ASSETS, *LENDING_ASSETS,
            *LENDING_SWEEP_ASSETS, *MARKETS_ASSETS, *BALANCES_ASSETS, *STREAKS_ASSETS],
    jobs=[nightly_reconciliation_job, lending_sweep_job, markets_balances_job, streak_reconciliation_job,
          streams_incremental_job, *SHARDED_STREAMS_JOBS],
    schedules=[nightly_reconciliation_schedule, lending_sweep_schedule, markets_balances_schedule,
               markets_balances_full_sweep_schedule, streams_incremental_schedule],
    sensors=[*SENSORS, streak_change_sensor],
    resources=build_resources(),
)
