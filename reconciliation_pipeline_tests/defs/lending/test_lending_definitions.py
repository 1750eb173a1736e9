"""How the lending assets wire into jobs, and the lending world they are tested on."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.worlds.lending import MIN_LOANS, LendingWorld, build_lending_world
from recon_demo.worlds.streams import build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.core.cadences import daily_partitions
from reconciliation_pipeline.defs.lending.definitions import LENDING
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline.resources import SorobanRpcResource
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

ALL = LENDING.definitions.assets


def test_the_sweep_job_selects_the_sweep_assets_and_their_inputs() -> None:
    resources = dg.Definitions(resources=make_resources("postgresql://unused", "http://unused"))
    defs = dg.Definitions.merge(LENDING.definitions, resources)
    job = defs.resolve_job_def("lending_sweep")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "provisional_loans", "pending_lending_transactions", "lending_sweep_discrepancies", "lending_sweep_repairs"}
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in dg.AssetSelection.groups("lending_sweep").resolve(graph)} == {
        "lending_sweep_discrepancies", "lending_sweep_repairs"}


def test_lending_jobs_get_only_the_read_only_chain_resource() -> None:
    keys = set().union(*(a.required_resource_keys for a in ALL))
    assert keys - {"io_manager"} == {"postgres", "soroban_rpc", "contracts", "settings", "pushgateway"}
    assert not any(hasattr(SorobanRpcResource, name) for name in ("sign", "signer", "secret", "keypair"))


def test_the_world_is_deterministic_and_any_size_holds_the_catalogue() -> None:
    reference = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    one, two = (build_lending_world(40, reference_time=reference) for _ in range(2))
    pd.testing.assert_frame_equal(one.loans_db, two.loans_db)
    pd.testing.assert_frame_equal(one.events, two.events)
    assert one.expected_findings().equals(two.expected_findings())
    big = build_lending_world(5000, reference_time=reference)
    assert len(big.loans_chain) == 5002 and len(big.expected_findings()) == len(one.expected_findings())
    hours = pd.to_datetime(big.events["at"], utc=True).dt.hour
    assert hours.between(6, 20).all()  # never near a partition boundary
    with pytest.raises(ValueError, match=f"at least {MIN_LOANS}"):
        build_lending_world(MIN_LOANS - 1, reference_time=reference)


def test_one_nightly_job_reconciles_streams_and_lending_together(
    world: LendingWorld, ledger: DevnetLedger, engine: sa.Engine, database_url: str, devnet: DevnetServer,
    reference_time: datetime, yesterday: str,
) -> None:
    streams = build_streams_world(30, reference_time=reference_time)
    write_streams_to_db(engine, streams)
    load_streams_into_ledger(ledger, streams)
    nightly = dg.define_asset_job("nightly_reconciliation", selection=dg.AssetSelection.groups("streams", "lending"),
                                  partitions_def=daily_partitions)
    defs = dg.Definitions(assets=[*STREAMS.assets("nightly"), *LENDING.assets("nightly")], jobs=[nightly],
                          resources=make_resources(database_url, devnet.url))
    result = defs.resolve_job_def("nightly_reconciliation").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=yesterday
    )
    assert result.success
    with engine.connect() as connection:
        by_domain = dict(connection.execute(
            sa.text("SELECT domain, count(*) FROM recon.discrepancies GROUP BY domain")).all())
    assert by_domain == {"streams": len(streams.expected_findings()), "lending": len(world.expected_findings())}
    assert "sendTransaction" not in ledger.request_counts
