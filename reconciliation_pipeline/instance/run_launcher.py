"""The default run launcher, able to tell run monitoring whether a run's process is alive.

Dagster's `DefaultRunLauncher` cannot say whether a run's process still exists. The code server
notices when the worker it started dies, but nothing notices a run executed in its own process
(`dagster job execute`, `recon demo`) that is killed, nor a launched run whose code server died
with it (SIGKILL of the process group, the OOM killer, a reboot): such a run stays STARTED
forever and no failure sensor fires. This launcher answers `check_run_worker_health` from the
pid the run's process records in its first engine event ("Started process for run (pid: N)"
for a launched run, "Executing steps in process (pid: N)" for one executed in place).

A pid says something only on the host that owns it: for a code server on another host (its
gRPC address is not this host) the worker is reported running, and that deployment's own
launcher (Celery, Kubernetes) is the one to monitor it.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

PID = re.compile(r"\(pid: (\d+)\)")
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


class MonitoredRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if not _code_server_is_local(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker is on another host: not checked here")
        pid = run_worker_pid(self._instance, run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker has not reported its pid yet")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker (pid {pid}) is gone before the run finished: it was killed or crashed",
        )



def run_worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid of the process running the run, as its first engine event naming one reports."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        match = PID.search(record.message or "")
        if match is not None:
            return int(match.group(1))
    return None


def _code_server_is_local(run: DagsterRun) -> bool:
    info = run.tags.get(GRPC_INFO_TAG)
    if info is None:
        return True
    grpc = json.loads(info)
    host = grpc.get("host")
    return "socket" in grpc or host is None or host in LOCAL_HOSTS or host == socket.gethostname()


def process_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        state = stat.read_text().rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X")
    return True
