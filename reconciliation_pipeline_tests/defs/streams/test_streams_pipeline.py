"""The streams reconciliation end to end: real PostgreSQL, the devnet over HTTP,
in-process Dagster runs of the real assets."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from reconciliation_pipeline.devnet.ledger import DevnetLedger, FaultConfig
from reconciliation_pipeline.devnet.seed import load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.devnet.server import DevnetServer
from reconciliation_pipeline.devnet.streams_world import StreamsWorld, build_streams_world
from reconciliation_pipeline.defs.streams.assets import STREAMS_ASSETS, STREAMS_CHECKS
from reconciliation_pipeline_tests.conftest import make_resources

FINDING_KEY = ["entity_type", "entity_id", "field", "drift_class", "severity", "db_value", "chain_value"]


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime) -> StreamsWorld:
    world = build_streams_world(450, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    return world


def run_streams(database_url: str, devnet: DevnetServer, partition: str, *,
                apply: bool = False, dry_run: bool = False, **rpc: int) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*STREAMS_ASSETS, *STREAMS_CHECKS],
        resources=make_resources(database_url, devnet.url, **rpc),
        partition_key=partition,
        run_config={"ops": {"stream_repairs": {"config": {"apply": apply, "dry_run": dry_run}}}},
        raise_on_error=True,
    )


def persisted_findings(engine: sa.Engine, run_id: str | None = None) -> pd.DataFrame:
    query = "SELECT * FROM recon.discrepancies" + (" WHERE run_id = :run_id" if run_id else "")
    with engine.connect() as connection:
        return pd.read_sql(sa.text(query), connection, params={"run_id": run_id} if run_id else None)


def as_set(frame: pd.DataFrame) -> set[tuple]:
    rows = frame[FINDING_KEY].astype(object).where(frame[FINDING_KEY].notna(), None)
    return set(map(tuple, rows.itertuples(index=False)))


def test_first_run_reports_exactly_the_injected_catalogue(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    result = run_streams(database_url, devnet, yesterday)
    found = persisted_findings(engine, result.run_id)
    assert as_set(found) == as_set(world.expected_findings())
    assert len(found) == len(world.expected_findings())
    stream_2 = found[found["entity_id"] == "stream_2"].iloc[0]
    assert (stream_2["field"], stream_2["db_value"], stream_2["chain_value"]) == ("released", "25005000000", "25000000000")
    assert int(stream_2["delta"]) == -5_000_000
    assert stream_2["ledger_sequence"] is not None and stream_2["partition_key"] == yesterday
    undecodable = found[found["drift_class"] == "CHAIN_READ_ERROR"].iloc[0]
    assert undecodable["details"]["raw_xdr"] == world.undecodable[8]
