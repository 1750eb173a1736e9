"""The API on a real HTTP server (uvicorn in a thread on 127.0.0.1), and a real Dagster
webserver (a subprocess) for the runs it launches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import uvicorn

from reconciliation_pipeline.api.app import create_app
from reconciliation_pipeline.api.command import settings_from_environment
from reconciliation_pipeline.localenv import PROJECT_ROOT

READ_TOKEN = "read-token-for-the-app-0f9d8c7b6a"
LAUNCH_TOKEN = "launch-token-for-the-app-1e2d3c4b5a"
WRONG_TOKEN = "not-a-token-we-gave-anyone-99999999"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Api:
    url: str

    def get(self, path: str, token: str | None = READ_TOKEN, **params: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.url + path, headers=headers, params=params, timeout=30)

    def post(self, path: str, body: dict, token: str | None = LAUNCH_TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(self.url + path, json=body, headers=headers, timeout=60)


@contextmanager
def api_server(env: dict[str, str]) -> Iterator[Api]:
    """`recon api`'s app from these environment variables, served over HTTP until the block ends."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings_from_environment(env)), host="127.0.0.1", port=port,
                                           log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield Api(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def dagster_webserver(env: dict[str, str], home: Path) -> Iterator[str]:
    """`dagster-webserver -w workspace.yaml` on a fresh instance folder; yields its URL.

    The instance launches submitted runs at once (DefaultRunCoordinator): no daemon runs here,
    so no schedule or sensor starts runs of its own while the test watches its one run.
    """
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n")
    webserver = Path(sys.executable).parent / "dagster-webserver"
    log = open(home / "webserver.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(webserver), "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env, "DAGSTER_HOME": str(home)}, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(url + "/server_info", timeout=2).ok and _location_loaded(url):
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Dagster webserver did not start: {(home / 'webserver.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _location_loaded(url: str) -> bool:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    body = requests.post(url + "/graphql", json={"query": query}, timeout=5).json()
    entries = body["data"]["workspaceOrError"]["locationEntries"]
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)
