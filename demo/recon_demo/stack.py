"""The demo's runs go through the workspace's code location, as runs launched from the UI do.

`make demo` starts a Dagster webserver for the length of the demo, submits each
run through its GraphQL API (the `dagster-graphql` client the API for the apps
uses too), and follows the run in the instance's event log. The runs are then
Dagster's own: launched by the instance's run launcher in a process of their
own, recorded with their code location, so the job's Runs tab, the timeline and
the asset pages show them.

The webserver runs on an instance folder of its own whose `dagster.yaml` is the
repository's with one difference: runs are launched as they are submitted
(DefaultRunCoordinator), because no daemon runs during the demo (it would start
schedules and sensors of its own). The storage, step outputs and logs are the
ones `make ui` reads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import requests
import yaml

from reconciliation_pipeline.instance.home import packaged_instance_file
from reconciliation_pipeline.localenv import LOCAL_DIR, PROJECT_ROOT

Say = Callable[[str], None]
LOCATION_LOAD_TIMEOUT_S = 180.0
TERMINAL = frozenset({dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})
LAUNCHER_HOME = "dagster_home_launcher"


def free_port(preferred: int = 0, host: str = "127.0.0.1", attempts: int = 50) -> int:
    """`preferred` when nothing listens on it, else the next free port after it (0: any free port)."""
    candidates = [0] if preferred == 0 else [preferred + i for i in range(attempts)]
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError(f"no free port on {host} from {preferred} to {preferred + attempts - 1}")


def launcher_home(instance_home: Path, base: Path = LOCAL_DIR) -> Path:
    """An instance folder that launches runs as they are submitted, sharing `instance_home`'s storage."""
    home = base / LAUNCHER_HOME
    home.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = yaml.safe_load(packaged_instance_file().read_text())
    config["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}
    config["local_artifact_storage"] = {"module": "dagster.core.storage.root", "class": "LocalArtifactStorage",
                                        "config": {"base_dir": str(instance_home)}}
    config["compute_logs"] = {"module": "dagster.core.storage.local_compute_log_manager",
                              "class": "LocalComputeLogManager",
                              "config": {"base_dir": str(instance_home / "storage")}}
    (home / "dagster.yaml").write_text(
        "# Written by `make demo` (recon_demo.stack): the repository's dagster.yaml, launching runs as they are\n"
        "# submitted (no daemon runs during the demo), with make ui's storage.\n" + yaml.safe_dump(config))
    return home


@dataclass(frozen=True)
class FinishedRun:
    run_id: str
    job_name: str
    status: dg.DagsterRunStatus

    @property
    def success(self) -> bool:
        return self.status == dg.DagsterRunStatus.SUCCESS


class DemoWebserver:
    """A webserver starting up: wait for its code location, submit runs to it, follow them to their end."""

    def __init__(self, url: str, instance: dg.DagsterInstance, log_path: Path,
                 process: subprocess.Popen[bytes]) -> None:
        from dagster_graphql import DagsterGraphQLClient

        port = int(url.rsplit(":", 1)[1])
        self.url = url
        self.log_path = log_path
        self._instance = instance
        self._process = process
        self._client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=120)

    def wait_until_loaded(self, timeout_s: float = LOCATION_LOAD_TIMEOUT_S) -> None:
        """Block until the webserver answers with its code location loaded."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if requests.get(self.url + "/server_info", timeout=2).ok and _location_loaded(self.url):
                    return
            except requests.RequestException:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Dagster webserver did not start; its log is {self.log_path}")
            time.sleep(0.3)

    def submit(self, job_name: str, *, tags: Mapping[str, str], run_config: Mapping[str, Any] | None = None,
               asset_selection: Sequence[str] | None = None) -> str:
        return self._client.submit_job_execution(job_name, run_config=dict(run_config or {}), tags=dict(tags),
                                                 asset_selection=list(asset_selection) if asset_selection else None)

    def follow(self, run_ids: Sequence[str], say: Say, poll_s: float = 0.5) -> list[FinishedRun]:
        """Print each run's log lines at INFO and above (one per asset step) until every run ended."""
        cursors: dict[str, str | None] = dict.fromkeys(run_ids)
        finished: dict[str, FinishedRun] = {}
        while len(finished) < len(run_ids):
            for run_id in run_ids:
                if run_id in finished:
                    continue
                run = self._instance.get_run_by_id(run_id)
                ended = run is not None and run.status in TERMINAL
                connection = self._instance.get_records_for_run(run_id, cursor=cursors[run_id])
                cursors[run_id] = connection.cursor
                for record in connection.records:
                    line = _progress_line(record.event_log_entry)
                    if line is not None:
                        say(line)
                if ended and not connection.has_more:
                    assert run is not None
                    finished[run_id] = FinishedRun(run_id, run.job_name, run.status)
            time.sleep(poll_s)
        return [finished[run_id] for run_id in run_ids]


def _progress_line(entry: Any) -> str | None:
    """What the demo prints of an event: the assets' own INFO lines, and failures."""
    event = entry.dagster_event
    if event is None:
        return entry.user_message if entry.level >= 20 else None  # logging.INFO
    if event.event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE):
        return f"{entry.step_key or 'run'} FAILED: {entry.user_message or event.message}"
    return None


def _location_loaded(url: str) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    body = requests.post(url + "/graphql", json={"query": query}, timeout=5).json()
    entries = body["data"]["workspaceOrError"]["locationEntries"]
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


@contextmanager
def demo_webserver(env: Mapping[str, str], instance_home: Path, instance: dg.DagsterInstance,
                   base: Path = LOCAL_DIR) -> Iterator[DemoWebserver]:
    """`dagster-webserver -w workspace.yaml` on a free port with `env`, started (not yet loaded: call
    `wait_until_loaded`, so the caller can seed meanwhile) until the block ends."""
    home = launcher_home(instance_home, base)
    port = free_port()
    log_path = base / "demo-webserver.log"
    webserver = Path(sys.executable).parent / "dagster-webserver"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(webserver), "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            env={**os.environ, **env, "DAGSTER_HOME": str(home)}, cwd=home, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield DemoWebserver(f"http://127.0.0.1:{port}", instance, log_path, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
