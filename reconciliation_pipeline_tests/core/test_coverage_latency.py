"""Coverage and detection latency, from real runs of the streams assets against the devnet.

Coverage counts the entities the runs knew of and those they compared in the
last 24 hours; a batch of reads that keeps failing leaves its 200 streams
unchecked. Latency runs from the close time of the ledger a drifting entry was
last modified at (the devnet's ledger clock, read over getLedgers) to the
incident being opened and confirmed. The Pushgateway is a local HTTP receiver.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from recon_demo.worlds.streams import StreamsWorld, build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.chain.keys import u64_entry_key
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline_tests.conftest import make_resources
from reconciliation_pipeline_tests.defs.markets.support import asset_metadata, http_receiver
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

N = 450
"""Three getLedgerEntries batches: 200, 200, and the rest."""


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime) -> StreamsWorld:
    world = build_streams_world(N, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    return world


def nightly(database_url: str, rpc_url: str, partition: str, pushgateway_url: str = "") -> dict:
    result = dg.materialize(STREAMS.assets("nightly"), partition_key=partition,
                            resources=make_resources(database_url, rpc_url, max_attempts=2,
                                                     pushgateway_url=pushgateway_url),
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return asset_metadata(result, "stream_discrepancies")


def coverage_view(engine: sa.Engine) -> dict[str, tuple]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT entity_type, known_entities, checked_24h, never_checked, coverage_ratio FROM recon.coverage "
            "WHERE domain = 'streams'")).all()
    return {r[0]: (*r[1:4], float(r[4])) for r in rows}


def test_coverage_is_full_after_a_full_sweep_and_drops_when_a_share_of_reads_fail(
    database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer, reference_time: datetime,
    yesterday: str,
) -> None:
    # The world without its undecodable entry (stream 8 is then missing on chain: compared, a finding),
    # so that every entity a healthy sweep reads is compared.
    world = replace(build_streams_world(N, reference_time=reference_time), undecodable={})
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    # One key of the second batch poisons it: its 200 streams cannot be read.
    ledger.faults = FaultConfig(poison_keys=frozenset({u64_entry_key(world.identities.stream_contract_id, "Stream",
                                                                     250)}),
                                methods=frozenset({"getLedgerEntries"}))
    with http_receiver() as pushgateway:
        failing = nightly(database_url, devnet.url, yesterday, pushgateway.url)
    streams = N + len(world.chain_only_ids)
    # Both tokens have streams in the failed batch: neither escrow's solvency is established either.
    unchecked = 200 + 2
    assert failing["entities_unchecked"] == unchecked
    known = streams + 2  # every stream, and the escrow of each of the two tokens
    assert failing["coverage/known_entities"] == known
    assert failing["coverage/never_checked"] == unchecked
    assert failing["coverage/checked_24h"] == known - unchecked
    assert failing["coverage/checked_24h_ratio"] == pytest.approx((known - unchecked) / known, abs=1e-6)
    assert coverage_view(engine)["stream"] == (streams, streams - 200, 200, round((streams - 200) / streams, 4))
    (push,) = [r for r in pushgateway.requests if r.method in ("POST", "PUT")]
    assert f"recon_coverage_ratio {(known - unchecked) / known}" in push.body.decode()
    assert f"recon_entities_never_checked {float(unchecked)}" in push.body.decode()

    ledger.faults = FaultConfig()
    healthy = nightly(database_url, devnet.url, yesterday)
    assert (healthy["coverage/checked_24h_ratio"], healthy["coverage/never_checked"]) == (1.0, 0)
    assert coverage_view(engine)["*"] == (known, known, 0, 1.0)


def test_detection_latency_runs_from_the_chain_change_to_the_incident(
    world: StreamsWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer,
    yesterday: str,
) -> None:
    first = nightly(database_url, devnet.url, yesterday)
    ledger.close_ledger(3)
    second = nightly(database_url, devnet.url, yesterday)
    with engine.connect() as connection:
        known = connection.execute(sa.text(
            "SELECT i.entity_id, i.chain_changed_ledger, i.chain_changed_at, i.first_seen_at, i.confirmed_at, "
            "d.details->>'last_modified_ledger' FROM recon.drift_incidents AS i "
            "JOIN recon.discrepancies AS d ON d.run_id = i.last_run_id AND d.entity_id = i.entity_id "
            "AND d.field = i.field AND d.drift_class = i.drift_class "
            "WHERE i.domain = 'streams' AND i.chain_changed_at IS NOT NULL ORDER BY i.entity_id")).all()
        view = connection.execute(sa.text(
            "SELECT incidents, open_max_seconds, confirmed, confirm_max_seconds FROM recon.detection_latency "
            "WHERE domain = 'streams' AND drift_class = '*'")).one()
    stream_2 = next(r for r in known if r[0] == "stream_2")
    ledger_of_change = int(stream_2[5])
    assert stream_2[1] == ledger_of_change
    assert stream_2[2] == datetime.fromtimestamp(ledger.ledger_close_time(ledger_of_change), UTC)
    open_s = [(r[3] - r[2]).total_seconds() for r in known]
    confirm_s = [(r[4] - r[2]).total_seconds() for r in known]
    assert first["latency/opened_with_known_change"] == len(known) > 0
    assert first["latency/open_seconds_max"] == pytest.approx(max(open_s), abs=0.01)
    assert "latency/confirm_seconds_max" not in first  # nothing confirmed yet
    assert second["latency/confirmed_with_known_change"] == len(known)
    assert second["latency/confirm_seconds_max"] == pytest.approx(max(confirm_s), abs=0.01)
    assert (view[0], view[2]) == (len(known), len(known))
    assert float(view[1]) == pytest.approx(max(open_s), abs=0.01)
    assert float(view[3]) == pytest.approx(max(confirm_s), abs=0.01)
    assert ledger.request_counts["getLedgers"] >= 1
