"""Where a drift came from, and drift in flight, on the streams world over the devnet.

- stream_2's chain value was written by a known release transaction: its finding names that
  transaction, its ledger and close time, beside when the database row was written; getLedgers
  is asked once per distinct ledger at most, and a re-run asks it nothing (recon caches it).
- A stream whose chain entry changes between the database snapshot and the chain read, or whose
  row is written after the chain read began, is in flight: recorded with that status, no incident;
  the next run compares it normally, and one seen in flight twice is drift.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.encode import stream_entry
from recon_demo.identities import DEVNET
from recon_demo.worlds.streams import (
    StreamsWorld,
    build_streams_world,
    load_streams_into_ledger,
    stream_tx_hash,
    write_streams_to_db,
)
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline_tests.api.conftest import READ_TOKEN, api_server
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

CHAIN_MOVES, ROW_MOVES = 20, 21
"""Two clean active streams: one the chain pays out during a run, one whose row the app rewrites."""


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime) -> StreamsWorld:
    world = build_streams_world(60, reference_time=reference_time)
    for stream_id in (CHAIN_MOVES, ROW_MOVES):
        for frame in (world.db, world.chain):
            frame.loc[frame["stream_id"] == stream_id, ["status", "released"]] = ["active", 1_000]
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    return world


def run(database_url: str, devnet: DevnetServer, partition: str, **settings: int) -> dg.ExecuteInProcessResult:
    return dg.materialize(STREAMS.assets("nightly"), resources=make_resources(database_url, devnet.url,
                                                                              settings=settings),
                          partition_key=partition)


def findings(engine: sa.Engine, run_id: str) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text("SELECT * FROM recon.discrepancies WHERE run_id = :r"), connection,
                           params={"r": run_id})


def incidents(engine: sa.Engine, stream_id: int) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text("SELECT * FROM recon.drift_incidents WHERE entity_id = :e AND state <> 'resolved'"),
                           connection, params={"e": f"stream_{stream_id}"})


def test_a_finding_names_the_transaction_that_wrote_the_chain_value(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    ledger.reset_counters()
    first = run(database_url, devnet, yesterday)
    found = findings(engine, first.run_id)
    released = found[(found["entity_id"] == "stream_2") & (found["field"] == "released")].iloc[0]
    origin = released["details"]["origin"]
    release_ledger = next(n for n, txs in ((n, ledger.transactions_in(n)) for n in range(
        ledger.latest_ledger - 20_000, ledger.latest_ledger + 1)) if any(t.tx_hash == stream_tx_hash("release:2")
                                                                       for t in txs))
    assert origin["tx_hash"] == stream_tx_hash("release:2") == world.catalogue[0].expected[0].origin_tx_hash
    assert (origin["ledger"], origin["operation_index"], origin["change"]) == (release_ledger, 0, "updated")
    assert datetime.fromisoformat(origin["closed_at"]).timestamp() == ledger.ledger_close_time(release_ledger)
    assert datetime.fromisoformat(released["details"]["db_written_at"]) < datetime.now(UTC)

    # Every chain-side finding has an origin; the ledgers they name were each asked for once.
    chain_side = found[~found["drift_class"].isin(["MISSING_ON_CHAIN", "INVALID_ADDRESS"])
                       & (found["entity_type"] == "stream")
                       & found["details"].map(lambda d: d.get("side") != "database")]
    origins = chain_side["details"].map(lambda d: d["origin"])
    assert origins.map(lambda o: o.get("tx_hash") is not None).all()
    named = {o["ledger"] for o in origins}
    assert len(named) > 3 and all(ledger.ledgers_requested[n] == 1 for n in named)
    sample = first.asset_materializations_for_node("stream_discrepancies")[0].metadata["findings_sample"].value
    assert stream_tx_hash("release:2")[:12] in sample

    ledger.reset_counters()
    second = run(database_url, devnet, yesterday)
    again = findings(engine, second.run_id)
    assert [ledger.ledgers_requested[n] for n in named] == [0] * len(named)  # recon knew them all
    assert again.loc[again["entity_id"] == "stream_2", "details"].iloc[0]["origin"]["tx_hash"] == origin["tx_hash"]
    metadata = second.asset_materializations_for_node("stream_discrepancies")[0].metadata
    assert metadata["origins/fetched"].value == 0 and metadata["origins/cached"].value == len(chain_side)


def test_origins_are_bounded_per_run(world: StreamsWorld, ledger: DevnetLedger, database_url: str,
                                     engine: sa.Engine, devnet: DevnetServer, yesterday: str) -> None:
    result = run(database_url, devnet, yesterday, origin_max_ledgers=2)
    origins = [d["origin"] for d in findings(engine, result.run_id)["details"] if "origin" in d]
    looked_up = {o["ledger"] for o in origins if o.get("tx_hash")}
    assert len(looked_up) == 2 and sum(ledger.ledgers_requested[o["ledger"]] for o in origins
                                       if o["ledger"] in looked_up) == 2
    assert all("ORIGIN_MAX_LEDGERS=2" in o["note"] for o in origins if o["ledger"] not in looked_up)
    assert result.asset_materializations_for_node("stream_discrepancies")[0].metadata[
        "origins/beyond_limit"].value == len({o["ledger"] for o in origins}) - 2


def during_chain_read(ledger: DevnetLedger, action: Callable[[], None], *, every_run: bool = False) -> None:
    """Run `action` when the first getLedgerEntries request of a run arrives: between the
    database snapshot and the chain read, as a concurrent app would."""
    read = ledger.handler("getLedgerEntries")
    assert read is not None
    state = {"done": False}

    def wrapped(params: Any) -> dict[str, Any]:
        if not state["done"]:
            state["done"] = True
            action()
        return read(params)

    ledger.register_method("getLedgerEntries", wrapped)
    if every_run:
        ledger.rearm = lambda: state.update(done=False)  # type: ignore[attr-defined]


def pay_out(ledger: DevnetLedger, world: StreamsWorld, stream_id: int, released: int) -> None:
    """The contract releases funds of a stream: a new ledger closes with its entry changed."""
    row = world.chain[world.chain["stream_id"] == stream_id].iloc[0].to_dict()
    ledger.close_ledger()
    ledger.put_raw_entry(*stream_entry(DEVNET.stream_contract_id, {**row, "released": released}))


def set_released(engine: sa.Engine, stream_id: int, released: int, at: datetime | None = None) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE streams SET released_amount = :r, updated_at = :at WHERE id = :id"),
                           {"r": str(released), "at": at or datetime.now(UTC), "id": stream_id})


def test_writes_between_the_snapshots_are_in_flight_and_the_next_run_compares_normally(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    # ROW_MOVES disagrees before the run: the app catches up while the chain is being read.
    set_released(engine, ROW_MOVES, 900, at=datetime.now(UTC) - timedelta(hours=1))

    def concurrent_app() -> None:
        pay_out(ledger, world, CHAIN_MOVES, 5_000)
        set_released(engine, ROW_MOVES, 1_000)

    during_chain_read(ledger, concurrent_app)
    first = run(database_url, devnet, yesterday)
    found = findings(engine, first.run_id).set_index("entity_id")
    for stream_id, reason in ((CHAIN_MOVES, "after the database snapshot"), (ROW_MOVES, "after the chain read")):
        finding = found.loc[f"stream_{stream_id}"]
        assert (finding["field"], finding["drift_class"], finding["status"]) == ("released", "VALUE_MISMATCH",
                                                                                "in_flight")
        assert reason in finding["details"]["in_flight"]
        assert incidents(engine, stream_id).empty
    assert (found.drop(index=[f"stream_{CHAIN_MOVES}", f"stream_{ROW_MOVES}"])["status"] == "drift").all()
    with engine.connect() as connection:
        in_flight, counts = connection.execute(sa.text(
            "SELECT in_flight, finding_counts FROM recon.runs WHERE run_id = :r"), {"r": first.run_id}).one()
    assert in_flight == 2 and counts["VALUE_MISMATCH"] == len(found[(found["drift_class"] == "VALUE_MISMATCH")
                                                                    & (found["status"] == "drift")])
    assert first.asset_materializations_for_node("stream_discrepancies")[0].metadata[
        "findings_in_flight"].value == 2
    with engine.connect() as connection:  # the analysts' daily counts leave them out
        counted = connection.execute(sa.text(
            "SELECT sum(finding_rows) FROM recon.daily_drift_counts WHERE domain = 'streams' AND partition_key = :p"),
            {"p": yesterday}).scalar_one()
    assert int(counted) == int((found["status"] == "drift").sum()) == len(found) - 2
    with api_server({"DATABASE_URL": database_url, "RECON_API_READ_TOKENS": READ_TOKEN}) as api:
        served = api.get("/v1/discrepancies", domain="streams", entity_id=f"stream_{CHAIN_MOVES}").json()
    assert [(d["status"], d["incident_id"]) for d in served["discrepancies"]] == [("in_flight", None)]

    # The app's row for CHAIN_MOVES follows; the next run compares both normally: they agree.
    set_released(engine, CHAIN_MOVES, 5_000)
    second = run(database_url, devnet, yesterday)
    again = findings(engine, second.run_id)
    assert again[again["entity_id"].isin([f"stream_{CHAIN_MOVES}", f"stream_{ROW_MOVES}"])].empty
    assert incidents(engine, CHAIN_MOVES).empty and incidents(engine, ROW_MOVES).empty
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM recon.in_flight")).scalar_one() == 0


def test_drift_that_persists_after_being_in_flight_opens_an_incident(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    during_chain_read(ledger, lambda: pay_out(ledger, world, CHAIN_MOVES, 5_000))
    first = run(database_url, devnet, yesterday)
    assert findings(engine, first.run_id).set_index("entity_id").loc[f"stream_{CHAIN_MOVES}", "status"] == "in_flight"
    # The app never writes the row: the next run sees the chain value as it stands, drift.
    second = run(database_url, devnet, yesterday)
    finding = findings(engine, second.run_id).set_index("entity_id").loc[f"stream_{CHAIN_MOVES}"]
    assert (finding["status"], finding["db_value"], finding["chain_value"]) == ("drift", "1000", "5000")
    assert len(incidents(engine, CHAIN_MOVES)) == 1


def test_a_finding_in_flight_in_two_runs_has_persisted(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    payouts = iter([5_000, 9_000])
    during_chain_read(ledger, lambda: pay_out(ledger, world, CHAIN_MOVES, next(payouts)), every_run=True)
    first = run(database_url, devnet, yesterday)
    assert findings(engine, first.run_id).set_index("entity_id").loc[f"stream_{CHAIN_MOVES}", "status"] == "in_flight"
    ledger.rearm()  # type: ignore[attr-defined]
    second = run(database_url, devnet, yesterday)
    finding = findings(engine, second.run_id).set_index("entity_id").loc[f"stream_{CHAIN_MOVES}"]
    assert finding["status"] == "drift" and "in_flight_persisted" in finding["details"]
    assert len(incidents(engine, CHAIN_MOVES)) == 1
