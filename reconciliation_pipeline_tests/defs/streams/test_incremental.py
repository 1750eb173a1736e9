"""The incremental streams reconciliation: real PostgreSQL, the devnet over HTTP, in-process
Dagster runs. An incremental run reads only what changed and finds the same drift as a
full run on the same state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from stellar_sdk import scval

from recon_demo.encode import stream_entry
from recon_demo.identities import DEVNET
from recon_demo.worlds.streams import StreamsWorld, build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.chain.keys import u64_entry_key
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, SWEEP_TAG
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline_tests.conftest import make_resources
from reconciliation_pipeline_tests.defs.streams.test_streams_pipeline import as_set, persisted_findings
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

INCIDENT_KEY = ["entity_id", "field", "drift_class"]


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime) -> StreamsWorld:
    """The seeded world, its rows last written by the app a day ago."""
    world = build_streams_world(200, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE streams SET updated_at = now() - interval '1 day'"))
    return world


@pytest.fixture
def keys_requested(ledger: DevnetLedger) -> list[list[str]]:
    """The ledger keys of every getLedgerEntries request the devnet serves."""
    requests: list[list[str]] = []
    read = ledger.handler("getLedgerEntries")
    assert read is not None

    def counting(params: Any) -> dict[str, Any]:
        requests.append(list(params["keys"]))
        return read(params)

    ledger.register_method("getLedgerEntries", counting)
    return requests


def run_incremental(database_url: str, devnet: DevnetServer, *, full: bool = False) -> dg.ExecuteInProcessResult:
    return dg.materialize(STREAMS.assets("incremental"), resources=make_resources(database_url, devnet.url),
                          tags={SWEEP_TAG: FULL_SWEEP} if full else None, raise_on_error=True)


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The plan's, the database snapshot's and the findings' metadata of one run, together."""
    values: dict[str, Any] = {}
    for node in ("stream_changes", "db_streams_incremental", "stream_incremental_discrepancies"):
        (materialization,) = result.asset_materializations_for_node(node)
        values.update({k: v.value for k, v in materialization.metadata.items()})
    return values


def unresolved_stream_incidents(engine: sa.Engine) -> set[tuple]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT entity_id, field, drift_class FROM recon.drift_incidents "
            "WHERE entity_type = 'stream' AND state <> 'resolved'"
        )).all()
    return set(map(tuple, rows))


def full_diff(database_url: str, devnet: DevnetServer, engine: sa.Engine) -> set[tuple]:
    """The unresolved incidents after a full sweep of the current state. Right after an
    incremental run this must change nothing: the increment found what a full sweep finds."""
    run_incremental(database_url, devnet, full=True)
    return unresolved_stream_incidents(engine)


def _plain_active_streams(world: StreamsWorld) -> list[int]:
    """Streams outside the catalogue that are active with some amount left to release."""
    chain = world.chain
    plain = chain[(chain["stream_id"] >= 10) & (chain["status"] == "active")
                  & (chain["released"] < chain["total"]) & ~chain["stream_id"].isin(world.chain_only_ids)]
    return [int(i) for i in plain["stream_id"]]


def test_incremental_runs_check_what_changed_and_find_what_a_full_run_finds(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    keys_requested: list[list[str]],
) -> None:
    first = run_incremental(database_url, devnet)
    expected = world.expected_findings()
    assert as_set(persisted_findings(engine, first.run_id)) == as_set(expected[expected["entity_type"] == "stream"])
    first_meta = metadata(first)
    assert first_meta["sweep_mode"] == "full" and first_meta["sweep_reason"] == "no watermark yet"
    assert first_meta["entities_checked"] == len(world.db) + len(world.chain_only_ids) - 1  # stream 8 unreadable
    # escrow solvency needs every stream: it is the nightly run's
    assert not [a for a in STREAMS.assets("incremental") if "escrow" in a.key.to_user_string()]

    db_changed, chain_changed = _plain_active_streams(world)[:2]
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE streams SET status = 'cancelled', updated_at = now() WHERE id = :id"),
                           {"id": db_changed})
        connection.execute(sa.text("UPDATE streams SET released_amount = 25000000000, updated_at = now() "
                                   "WHERE id = 2"))
    released_at = ledger.close_ledger()
    row = world.chain[world.chain["stream_id"] == chain_changed].iloc[0].to_dict()
    key, data = stream_entry(DEVNET.stream_contract_id, {**row, "released": row["released"] + 1_000})
    ledger.put_raw_entry(key, data)
    ledger.add_event(contract_id=DEVNET.stream_contract_id,
                     topic=[scval.to_symbol("stream_released"), scval.to_uint64(chain_changed)],
                     value=scval.to_int128(1_000), ledger=released_at)
    ledger.close_ledger()
    keys_requested.clear()

    second = run_incremental(database_url, devnet)

    # every stream the catalogue injected drift into (the escrow's is not a stream)
    open_incident_ids = {int(e.removeprefix("stream_")) for e in expected.loc[expected["entity_type"] == "stream",
                                                                                "entity_id"]}
    expected_keys = {u64_entry_key(DEVNET.stream_contract_id, "Stream", i)
                     for i in open_incident_ids | {db_changed, chain_changed}}
    assert len(keys_requested) == 1 and set(keys_requested[0]) == expected_keys
    meta = metadata(second)
    assert meta["sweep_mode"] == "incremental"
    assert (meta["rows_written_since_watermark"], meta["values_named_by_events"], meta["open_incidents/streams"]) == (
        2, 1, len(open_incident_ids))
    assert meta["ledger_from"] == first_meta["ledger_to"] + 1 and meta["ledger_to"] == ledger.latest_ledger

    incidents = unresolved_stream_incidents(engine)
    assert incidents == full_diff(database_url, devnet, engine)
    assert ("stream_2", "released", "VALUE_MISMATCH") not in incidents
    assert {(f"stream_{db_changed}", "status", "STATUS_MISMATCH"),
            (f"stream_{chain_changed}", "released", "VALUE_MISMATCH")} <= incidents


def test_a_watermark_out_of_retention_falls_back_to_a_full_sweep(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
) -> None:
    run_incremental(database_url, devnet)
    ledger.close_ledger(ledger.retention_window + 1)
    result = run_incremental(database_url, devnet)
    meta = metadata(result)
    assert meta["sweep_mode"] == "full" and "retention" in meta["sweep_reason"]
    assert meta["entities_checked"] == len(world.db) + len(world.chain_only_ids) - 1
    assert unresolved_stream_incidents(engine) == full_diff(database_url, devnet, engine)
    with engine.connect() as connection:
        watermark = connection.execute(sa.text("SELECT ledger_sequence FROM recon.sweep_watermarks")).scalar_one()
    assert watermark == ledger.latest_ledger


def test_a_chain_behind_the_watermark_is_swept_in_full(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
) -> None:
    """After a network reset the ledger numbers start again: the events after the old
    watermark are not 'nothing yet' but another history, so the run sweeps everything."""
    run_incremental(database_url, devnet)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE recon.sweep_watermarks SET ledger_sequence = :ahead "
                                   "WHERE domain = 'streams'"), {"ahead": ledger.latest_ledger + 1_000})
    meta = metadata(run_incremental(database_url, devnet))
    assert meta["sweep_mode"] == "full" and "behind the recorded ledger" in meta["sweep_reason"]
    assert meta["entities_checked"] == len(world.db) + len(world.chain_only_ids) - 1
