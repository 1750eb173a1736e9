"""Shared by the markets, balances, alerts and metrics tests: resources for the
5-minute reconciliation, seeded worlds, and a local HTTP receiver.

The receiver stands in for Slack's incoming webhook and for a Prometheus
Pushgateway, neither of which can run here: it records every request so tests
can check what a real one would have been sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from reconciliation_pipeline.core.alerts import AlertingResource
from reconciliation_pipeline.defs.balances.definitions import BALANCES
from reconciliation_pipeline.defs.markets.definitions import MARKETS
from reconciliation_pipeline_tests.conftest import make_resources

MARKETS_ASSETS = MARKETS.assets("frequent")
BALANCES_ASSETS = BALANCES.assets("frequent")
FINDING_KEY = ["entity_type", "entity_id", "field", "drift_class", "severity", "db_value", "chain_value"]


def frequent_resources(
    database_url: str,
    rpc_url: str,
    *,
    run_time_limit_s: int = 240,
    odds_threshold: str = "0.01",
    tolerance: int = 10,
    pushgateway_url: str = "",
    webhook_url: str = "",
    **rpc: int,
) -> dict[str, object]:
    """Every resource the markets and balances assets need, without the environment."""
    settings = {"run_time_limit_s": run_time_limit_s, "odds_mismatch_threshold": odds_threshold,
                "usdc_balance_tolerance": tolerance}
    return {
        **make_resources(database_url, rpc_url, settings=settings, pushgateway_url=pushgateway_url, **rpc),
        "alerting": AlertingResource(webhook_url=webhook_url, timeout_ms=2000),
    }


def run_frequent(
    resources: dict[str, object],
    assets: Sequence[dg.AssetsDefinition] | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    chosen = list(assets) if assets is not None else [*MARKETS_ASSETS, *BALANCES_ASSETS]
    return dg.materialize(chosen, resources=resources, instance=instance, raise_on_error=raise_on_error)


def persisted_findings(engine: sa.Engine, run_id: str | None = None, domain: str | None = None) -> pd.DataFrame:
    clauses = [c for c, v in (("run_id = :run_id", run_id), ("domain = :domain", domain)) if v is not None]
    query = "SELECT * FROM recon.discrepancies" + (" WHERE " + " AND ".join(clauses) if clauses else "")
    with engine.connect() as connection:
        return pd.read_sql(sa.text(query), connection, params={"run_id": run_id, "domain": domain})


def as_set(frame: pd.DataFrame) -> set[tuple]:
    rows = frame[FINDING_KEY].astype(object).where(frame[FINDING_KEY].notna(), None)
    return set(map(tuple, rows.itertuples(index=False)))


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """What a local HTTP endpoint was sent; `status` is what it answers."""

    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200


@contextmanager
def http_receiver(status: int = 200) -> Iterator[HttpReceiver]:
    """An HTTP server on 127.0.0.1 (a thread) recording every POST/PUT it gets."""
    receiver = HttpReceiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                receiver.requests.append(Received(self.command, self.path, dict(self.headers), body))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_POST = do_PUT = _record

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.status = status
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def asset_metadata(result: dg.ExecuteInProcessResult, asset_name: str) -> dict[str, Any]:
    """The metadata values of one asset's materialization in a run."""
    (materialization,) = result.asset_materializations_for_node(asset_name)
    return {key: value.value for key, value in materialization.metadata.items()}


def unresolved_incidents(engine: sa.Engine, domain: str) -> set[tuple]:
    """(entity_type, entity_id, field, drift_class) of every incident not resolved."""
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT entity_type, entity_id, field, drift_class FROM recon.drift_incidents "
            "WHERE domain = :domain AND state <> 'resolved'"), {"domain": domain}).all()
    return set(map(tuple, rows))


def incident_keys(findings: pd.DataFrame) -> set[tuple]:
    """The incident identity of each finding: what `unresolved_incidents` returns."""
    return set(map(tuple, findings[["entity_type", "entity_id", "field", "drift_class"]].itertuples(index=False)))
