"""How a run executes its steps: in one process locally, one process per step in production.

Dagster's default executor starts a process per step. For a run that reads the
chain in seconds that start-up is most of the run (a 2-day backfill from the UI
took over two minutes locally, almost all of it processes importing the code).
`RECON_EXECUTOR` picks, when a run starts, between the multiprocess executor
(the default: what a deployment keeps) and the in-process one (what `make ui`
and `make demo` use). Jobs that pin an executor of their own keep it, and a
distributed deployment binds its own executor to its code location instead
(`deploy/celery/definitions.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

EXECUTOR_VARIABLE = "RECON_EXECUTOR"
IN_PROCESS = "in_process"
MULTIPROCESS = "multiprocess"
EXECUTOR_MODES = (MULTIPROCESS, IN_PROCESS)


def executor_config(mode: str) -> dict[str, dict[str, Any]]:
    """The `multi_or_in_process_executor` config for a mode, refusing anything else by name."""
    if mode not in EXECUTOR_MODES:
        raise ValueError(f"{EXECUTOR_VARIABLE} must be one of {', '.join(EXECUTOR_MODES)}, not {mode!r}")
    return {mode: {}}


def _from_run_config_or_environment(config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A run's own `execution` config wins (the launchpad, `-c run_config.yaml`); without one,
    `RECON_EXECUTOR`. Evaluated when a run's config is resolved (at launch and in the run's
    process), never at import."""
    if config:
        return config
    return executor_config(dg.EnvVar(EXECUTOR_VARIABLE).get_value(MULTIPROCESS) or MULTIPROCESS)


recon_executor = dg.multi_or_in_process_executor.configured(
    _from_run_config_or_environment,
    name="recon_executor",
    # What multi_or_in_process_executor takes ({multiprocess: {...}} or {in_process: {...}}), checked
    # by it once chosen; optional here so a run without it gets the environment's choice.
    config_schema=dg.Field(dg.Permissive(), is_required=False, default_value={}),
)
"""Multiprocess or in-process, as the run's config or else `RECON_EXECUTOR` says when the run starts."""
