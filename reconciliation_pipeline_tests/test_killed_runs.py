"""A run SIGKILLed mid-way: failed in Dagster and in recon.runs, alerted once.

The run is executed in its own process (`dagster job execute`, as `recon demo` runs jobs), so
no code server watches it: only run monitoring, through the shipped launcher, can tell that it
died. Everything is real: the shipped dagster.yaml (only the poll interval is shortened), a
dagster-daemon process with this code location, the devnet over HTTP (slowed so the run is
mid-read when killed), and the alert webhook a local HTTP receiver. (A run the daemon launches
and whose worker is killed is failed by Dagster's code server at once; the same sensor then
marks recon.runs and alerts.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.definitions.run_request import InstigatorType

from recon_demo.worlds.streams import build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.instance.home import packaged_instance_file
from reconciliation_pipeline.instance.run_launcher import process_alive, run_worker_pid
from reconciliation_pipeline.localenv import PROJECT_ROOT, dagster_storage_url, ensure_database, with_database
from reconciliation_pipeline_tests.defs.markets.support import HttpReceiver, http_receiver
from soroban_devnet.ledger import DevnetLedger, FaultConfig

T = TypeVar("T")
CODE = ("-m", "reconciliation_pipeline.definitions")
BIN = Path(sys.executable).parent


def _wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, log: Path) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; daemon log:\n"
                         f"{log.read_text()[-4000:]}")


@pytest.fixture
def dagster_home(tmp_path: Path, pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A Dagster home holding the shipped dagster.yaml (monitoring polled every second), on its own database."""
    config = yaml.safe_load(packaged_instance_file().read_text())
    config["run_monitoring"]["poll_interval_seconds"] = 1
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    database = f"dagster_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, database)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url(with_database(pg_admin_url, database)))
    yield home


def _sensor_ticked(instance: dg.DagsterInstance, name: str) -> bool:
    return any(state.name == name and state.instigator_data is not None and getattr(state.instigator_data, "cursor")
               for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR))


def _alerts_for(webhook: HttpReceiver, run_id: str) -> list[dict]:
    return [body for body in (json.loads(r.body) for r in webhook.requests) if run_id in body["text"]]


def test_a_killed_run_is_failed_in_dagster_and_recon_runs_and_alerted_once(
    pipeline_env: None, dagster_home: Path, engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime,
    yesterday: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = build_streams_world(450, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    ledger.faults = FaultConfig(latency_s=8.0, methods=frozenset({"getLedgerEntries"}))  # mid-read when killed
    log = tmp_path / "daemon.log"
    run_config = tmp_path / "run_config.yaml"
    run_config.write_text(yaml.safe_dump({"execution": {"config": {"in_process": {}}}}))
    with http_receiver() as webhook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.url)
        instance = dg.DagsterInstance.get()
        with log.open("w") as out:
            daemon = subprocess.Popen([BIN / "dagster-daemon", "run", *CODE], cwd=PROJECT_ROOT, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        job = None
        try:
            _wait_for("the run failure sensor's first tick",
                      lambda: _sensor_ticked(instance, "run_failure_alerts"), 120, log)
            job = subprocess.Popen([BIN / "dagster", "job", "execute", *CODE, "-j", "nightly_reconciliation",
                                    "-c", run_config, "--tags", json.dumps({"dagster/partition": yesterday}, allow_nan=False)],
                                   cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)

            def streams_reading() -> str | None:
                with engine.connect() as connection:
                    run = connection.execute(sa.text(
                        "SELECT run_id FROM recon.runs WHERE domain = 'streams' AND status = 'running' "
                        "AND job_name = 'nightly_reconciliation'")).scalar()
                return run if ledger.request_counts["getLedgerEntries"] > 0 else None

            run_id = _wait_for("the streams chain read to start", streams_reading, 120, log)
            pid = _wait_for("the run's pid", lambda: run_worker_pid(instance, run_id), 30, log)
            assert pid == job.pid and process_alive(pid)
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
            killed_at = time.monotonic()

            failed = _wait_for("Dagster to mark the run failed", lambda: (
                run := instance.get_run_by_id(run_id)) is not None and run.status == dg.DagsterRunStatus.FAILURE,
                60, log)
            assert failed
            monitoring_s = time.monotonic() - killed_at
            alert = _wait_for("the run failure alert", lambda: _alerts_for(webhook, run_id), 90, log)

            with engine.connect() as connection:
                rows = dict(connection.execute(sa.text("SELECT domain, status FROM recon.runs WHERE run_id = :r"),
                                               {"r": run_id}).all())
                error = connection.execute(sa.text(
                    "SELECT error FROM recon.runs WHERE run_id = :r AND domain = 'streams'"), {"r": run_id}).scalar()
            assert rows["streams"] == "failed" and set(rows.values()) <= {"failed", "succeeded", "partial"}
            assert "the Dagster run failed before this domain finished" in error
            # Run monitoring, through the shipped launcher, is what noticed: its reason is the failure's.
            failure = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
            assert [f"(pid {pid})" in e.message and "killed or crashed" in e.message for e in failure] == [True]
            text = alert[0]["blocks"][1]["text"]["text"]
            assert "killed or crashed" in text and "Never finished (marked failed in recon.runs): " in text
            time.sleep(3)
            assert len(_alerts_for(webhook, run_id)) == 1
            assert monitoring_s < 15, f"run monitoring took {monitoring_s:.1f} s"
        finally:
            if job is not None and job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
            # The daemon's code server shares its process group: nothing outlives the test.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
