"""A domain run's row in recon.runs: written at its first step, final only after its last one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.worlds.streams import StreamsWorld, build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.chain.keys import u64_entry_key
from reconciliation_pipeline.core.alerts import AlertingResource
from reconciliation_pipeline.defs.alerting.definitions import unfinished_run_alert_sensor
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline.resources import PostgresResource
from reconciliation_pipeline_tests.conftest import make_resources
from reconciliation_pipeline_tests.defs.markets.support import http_receiver
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime) -> StreamsWorld:
    world = build_streams_world(60, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    return world


def _runs(engine: sa.Engine, run_id: str) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text("SELECT * FROM recon.runs WHERE run_id = :r"), connection, params={"r": run_id})


def _materialize(database_url: str, devnet: DevnetServer, partition: str, selection: str | None = None,
                 instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(STREAMS.assets("nightly"), selection=selection, partition_key=partition,
                          resources=make_resources(database_url, devnet.url), raise_on_error=False, instance=instance)


def test_the_status_is_final_only_after_the_repairs_step(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    result = _materialize(database_url, devnet, yesterday)
    assert result.success
    row = _runs(engine, result.run_id).iloc[0]
    # The world holds an undecodable stream: partial, with every step done.
    assert (row["status"], row["outcome"], row["steps_pending"]) == ("partial", "partial", 0)
    assert row["finished_at"] is not None and row["started_at"] < row["finished_at"]
    # The row dates from the domain's first step, not from the findings step.
    with engine.connect() as connection:
        snapshot_at = connection.execute(sa.text("SELECT min(db_snapshot_at) FROM recon.discrepancies "
                                                 "WHERE run_id = :r"), {"r": result.run_id}).scalar_one()
    assert row["started_at"] <= snapshot_at


def test_a_run_without_its_repairs_step_ends_at_the_findings(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    result = _materialize(database_url, devnet, yesterday, selection="*stream_discrepancies")
    assert result.success
    row = _runs(engine, result.run_id).iloc[0]
    assert (row["status"], row["steps_pending"]) == ("partial", 0)


def test_a_failed_step_marks_its_domain_failed_with_the_reason(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    for stream_id in world.db["stream_id"]:
        ledger.remove_entry(u64_entry_key(world.identities.stream_contract_id, "Stream", int(stream_id)))
    result = _materialize(database_url, devnet, yesterday)
    assert not result.success
    row = _runs(engine, result.run_id).iloc[0]
    assert row["status"] == "failed" and row["finished_at"] is not None
    assert row["error"].startswith("chain_streams: Failure:") and "STREAM_CONTRACT_ID" in row["error"]


def test_rows_a_finished_run_left_running_are_failed_and_alerted_once(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    succeeded = _materialize(database_url, devnet, yesterday, instance=instance)
    old = datetime.now(UTC) - timedelta(minutes=10)
    with engine.begin() as connection:  # a row its run never finished, and one of a run Dagster does not know
        connection.execute(sa.text("UPDATE recon.runs SET status = 'running', started_at = :old WHERE run_id = :r"),
                           {"r": succeeded.run_id, "old": old})
        connection.execute(sa.text("INSERT INTO recon.runs (run_id, domain, job_name, started_at, status) "
                                   "VALUES ('gone', 'lending', 'lending_sweep', :old, 'running')"), {"old": old})
        connection.execute(sa.text("INSERT INTO recon.runs (run_id, domain, job_name, started_at, status) "
                                   "VALUES ('young', 'lending', 'lending_sweep', now(), 'running')"))
    with http_receiver() as webhook:
        for _ in range(2):
            with dg.build_sensor_context(instance=instance, resources={
                "postgres": PostgresResource(database_url=database_url),
                "alerting": AlertingResource(webhook_url=webhook.url),
            }) as context:
                unfinished_run_alert_sensor(context)
    bodies = sorted((json.loads(r.body) for r in webhook.requests), key=lambda b: b["text"])
    assert [b["text"] for b in bodies] == [f"[CRITICAL] run of __ephemeral_asset_job__ failed ({succeeded.run_id})",
                                           "[CRITICAL] run of lending_sweep failed (gone)"]
    details = [b["blocks"][1]["text"]["text"] for b in bodies]
    assert "succeeded without running this domain's last steps" in details[0] and "streams" in details[0]
    assert "has no such run" in details[1] and "lending" in details[1]
    with engine.connect() as connection:
        statuses = dict(connection.execute(sa.text("SELECT run_id, status FROM recon.runs")).all())
    assert statuses == {succeeded.run_id: "failed", "gone": "failed", "young": "running"}
