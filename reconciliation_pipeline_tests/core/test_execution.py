"""The executor chosen when a run starts (`RECON_EXECUTOR`), and where the daily partitions start
(`RECON_PARTITIONS_START`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from reconciliation_pipeline.core.cadences import FREQUENT_JOB, NIGHTLY_JOB, partitions_start
from reconciliation_pipeline.core.execution import executor_config, recon_executor
from reconciliation_pipeline.localenv import PROJECT_ROOT


@dg.asset
def first_step() -> None:
    return None


@dg.asset(deps=[first_step])
def second_step() -> None:
    return None


def two_step_job() -> dg.JobDefinition:
    return dg.Definitions(assets=[first_step, second_step], jobs=[dg.define_asset_job("two_steps")],
                          executor=recon_executor).resolve_job_def("two_steps")


def _step_pids(mode: str, monkeypatch: pytest.MonkeyPatch,
               run_config: dict | None = None) -> tuple[int, int, int]:
    """The processes the two steps ran in, and the run's own."""
    monkeypatch.setenv("RECON_EXECUTOR", mode)
    with dg.instance_for_test() as instance:
        with dg.execute_job(dg.reconstructable(two_step_job), instance, run_config=run_config) as result:
            assert result.success
            run_id = result.run_id
        starts = {e.step_key: e.dagster_event.pid for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)}
        (run_start,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    return starts["first_step"], starts["second_step"], run_start.dagster_event.pid


def test_in_process_runs_every_step_in_the_runs_process(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, run_process = _step_pids("in_process", monkeypatch)
    assert first == second == run_process


def test_multiprocess_is_the_default_and_starts_a_process_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, run_process = _step_pids("multiprocess", monkeypatch)
    assert len({first, second, run_process}) == 3
    monkeypatch.delenv("RECON_EXECUTOR")
    assert executor_config(os.environ.get("RECON_EXECUTOR", "multiprocess")) == {"multiprocess": {}}


def test_a_runs_own_execution_config_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, run_process = _step_pids("multiprocess", monkeypatch,
                                            {"execution": {"config": {"in_process": {}}}})
    assert first == second == run_process


def test_an_unknown_executor_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="RECON_EXECUTOR must be one of multiprocess, in_process"):
        executor_config("celery")


def test_the_pipelines_jobs_and_asset_runs_use_it_and_the_5_minute_job_keeps_in_process() -> None:
    from reconciliation_pipeline.definitions import defs

    definitions = defs()
    assert definitions.resolve_job_def(NIGHTLY_JOB).executor_def is recon_executor
    assert definitions.resolve_implicit_global_asset_job_def().executor_def is recon_executor
    assert definitions.resolve_job_def(FREQUENT_JOB).executor_def is dg.in_process_executor


def test_partitions_start_is_a_date_or_days_back() -> None:
    today = date(2026, 12, 1)
    assert partitions_start("2026-11-01", today) == date(2026, 11, 1)
    assert partitions_start("-30d", today) == date(2026, 11, 1)
    assert partitions_start(" -7d ", today) == date(2026, 11, 24)
    for wrong in ("yesterday", "30d", "-30", "2026-13-01"):
        with pytest.raises(ValueError, match="RECON_PARTITIONS_START must be a date"):
            partitions_start(wrong, today)


def _loaded_partitions(env: dict[str, str]) -> dict[str, object]:
    """The nightly job's partitions as a freshly loaded code location sees them (its own process)."""
    script = ("import json; from reconciliation_pipeline.definitions import defs; "
              "keys = defs().resolve_job_def('nightly_reconciliation').partitions_def.get_partition_keys(); "
              "print(json.dumps({'first': keys[0], 'last': keys[-1], 'count': len(keys)}))")
    environ = {k: v for k, v in os.environ.items() if k != "RECON_PARTITIONS_START"}
    output = subprocess.run([sys.executable, "-c", script], env={**environ, **env}, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_the_partitions_start_30_days_back_unless_the_variable_names_a_start() -> None:
    today = datetime.now(UTC).date()
    default = _loaded_partitions({})
    assert default == {"first": (today - timedelta(days=30)).isoformat(),
                       "last": (today - timedelta(days=1)).isoformat(), "count": 30}
    fixed = _loaded_partitions({"RECON_PARTITIONS_START": (today - timedelta(days=10)).isoformat()})
    assert fixed["first"] == (today - timedelta(days=10)).isoformat() and fixed["count"] == 10
