"""The streams reconciliation end to end: real PostgreSQL, the devnet over HTTP,
in-process Dagster runs of the real assets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.identities import DEVNET
from recon_demo.worlds.streams import StreamsWorld, build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.chain.keys import u64_entry_key
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

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
        STREAMS.assets("nightly"),
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
    # the snapshot keeps ledger keys only for rows with a problem; a stream only the
    # chain has gets its key rebuilt, equal to the one it was read at
    chain_only = found[found["drift_class"] == "MISSING_IN_DB"].iloc[0]
    stream_id = int(chain_only["entity_id"].removeprefix("stream_"))
    assert chain_only["details"]["ledger_key"] == u64_entry_key(DEVNET.stream_contract_id, "Stream", stream_id)
    assert isinstance(chain_only["details"]["last_modified_ledger"], int)


def incidents(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text("SELECT * FROM recon.drift_incidents"), connection)


def test_rerun_replaces_findings_and_confirms_incidents(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    first = run_streams(database_url, devnet, yesterday)
    after_first = incidents(engine)
    assert set(after_first["state"]) == {"open"}
    second = run_streams(database_url, devnet, yesterday)
    found = persisted_findings(engine)
    assert set(found["run_id"]) == {second.run_id} != {first.run_id}
    assert as_set(found) == as_set(world.expected_findings())
    after_second = incidents(engine)
    assert len(after_second) == len(after_first)
    assert set(after_second["state"]) == {"confirmed"}
    assert set(after_second["consecutive_runs"]) == {2}


def test_repaired_drift_resolves_and_applied_repairs_are_audited_once(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    run_streams(database_url, devnet, yesterday, apply=True)
    with engine.connect() as connection:
        repairs = pd.read_sql(sa.text("SELECT * FROM recon.repairs ORDER BY entity_id, field"), connection)
        audit = pd.read_sql(sa.text("SELECT * FROM recon.repair_audit"), connection)
        rows = connection.execute(sa.text(
            "SELECT id::int AS id, released_amount::text AS released, status FROM streams WHERE id IN (2, 4, 5, 6)"
        )).mappings().all()
    assert list(zip(repairs["entity_id"], repairs["field"], repairs["state"], strict=True)) == [
        ("stream_2", "released", "applied"),
        ("stream_4", "status", "applied"),
        ("stream_5", "released", "applied"),
        ("stream_6", "released", "applied"),
    ]
    assert sorted(audit["action"]) == ["applied"] * 4
    chain = world.chain.set_index("stream_id")
    for row in rows:
        assert row["released"] == str(chain.at[row["id"], "released"])
        assert row["status"] == chain.at[row["id"], "status"]

    second = run_streams(database_url, devnet, yesterday, apply=True)
    found = persisted_findings(engine, second.run_id)
    assert not found["drift_class"].isin(["VALUE_MISMATCH", "STATUS_MISMATCH"]).any()
    state = incidents(engine).set_index(["entity_id", "field", "drift_class"])["state"]
    assert state[("stream_2", "released", "VALUE_MISMATCH")] == "resolved"
    assert state[("stream_5", "released_le_total", "INVARIANT_VIOLATION")] == "resolved"
    assert state[("stream_3", "*", "MISSING_ON_CHAIN")] == "confirmed"
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM recon.repair_audit")).scalar_one() == 4
        runs = pd.read_sql(sa.text("SELECT * FROM recon.runs WHERE run_id = :r"), connection, params={"r": second.run_id})
    assert runs["repairs_applied"].tolist() == [0] and runs["repairs_planned"].tolist() == [0]


def _app_tables(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT * FROM streams ORDER BY id")).all()


def test_dry_run_plans_but_leaves_application_tables_untouched(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    before = _app_tables(engine)
    result = run_streams(database_url, devnet, yesterday, apply=True, dry_run=True)
    assert _app_tables(engine) == before
    with engine.connect() as connection:
        states = connection.execute(sa.text("SELECT state, count(*) FROM recon.repairs GROUP BY state")).all()
        dry = connection.execute(sa.text("SELECT dry_run FROM recon.runs WHERE run_id = :r"), {"r": result.run_id}).scalar_one()
    assert states == [("planned", 4)]
    assert dry is True


def test_plan_only_is_the_default(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    before = _app_tables(engine)
    run_streams(database_url, devnet, yesterday)
    assert _app_tables(engine) == before


def test_reading_n_streams_costs_ceil_n_over_200_requests(
    engine: sa.Engine, ledger: DevnetLedger, database_url: str, devnet: DevnetServer,
    reference_time: datetime, yesterday: str,
) -> None:
    world = build_streams_world(1000, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    ledger.reset_counters()
    streams_and_chain = [a for a in STREAMS.assets("nightly") if a.key.path[0] in ("db_streams", "chain_streams")]
    result = dg.materialize(streams_and_chain, resources=make_resources(database_url, devnet.url),
                            partition_key=yesterday)
    keys_read = result.asset_materializations_for_node("chain_streams")[0].metadata["dagster/row_count"].value
    assert keys_read == 1001  # 1000 database streams + 1 discovered from its stream_created event
    assert ledger.request_counts["getLedgerEntries"] == -(-keys_read // 200) == 6


def test_failed_batches_become_read_errors_and_the_rest_is_reconciled(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, yesterday: str,
) -> None:
    # The seed fails some of the sweep's batches, not all: which ones does not depend on the order
    # its workers send them in.
    ledger.faults = FaultConfig(failure_rate=0.5, failure_seed=1, methods=frozenset({"getLedgerEntries"}))
    result = run_streams(database_url, devnet, yesterday, max_attempts=1)
    assert result.success
    chain = result.output_for_node("chain_streams").frame
    failed = chain[chain["read_error"].fillna("").str.startswith("read failed")]
    read_ok = chain[chain["read_status"] == "ok"]
    assert len(failed) > 0 and len(read_ok) > 0
    found = persisted_findings(engine, result.run_id)
    errors = found[found["drift_class"] == "CHAIN_READ_ERROR"]
    failed_ids = {f"stream_{i}" for i in failed["stream_id"]}
    assert failed_ids <= set(errors["entity_id"])
    assert all("injected failure" in d["error"] for d in errors[errors["entity_id"].isin(failed_ids)]["details"])
    expected = world.expected_findings()
    expected_elsewhere = expected[~expected["entity_id"].isin(failed_ids) & (expected["entity_type"] == "stream")]
    assert as_set(expected_elsewhere) <= as_set(found)
    assert not found[found["entity_id"].isin(failed_ids)]["drift_class"].isin(["MISSING_ON_CHAIN"]).any()
    with engine.connect() as connection:
        status = connection.execute(sa.text("SELECT status FROM recon.runs WHERE run_id = :r"),
                                    {"r": result.run_id}).scalar_one()
    assert status == "partial"


def test_backfill_over_a_date_range_keeps_each_partition_separate(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, reference_time: datetime,
) -> None:
    days = [(reference_time.date() - pd.Timedelta(days=d)).isoformat() for d in (3, 2, 1)]
    for day in days:
        run_streams(database_url, devnet, day)
    found = persisted_findings(engine)
    assert sorted(set(found["partition_key"])) == sorted(days)
    created_at = ledger.ledger_close_time(ledger.latest_ledger - 36 * 3600 // 5)
    chain_only = f"stream_{world.chain_only_ids[0]}"
    for day in days:
        window_end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
        in_window = pd.Timestamp(created_at, unit="s", tz="UTC") < window_end
        rows = found[found["partition_key"] == day]
        assert (chain_only in set(rows["entity_id"])) == in_window
        assert as_set(rows[rows["entity_id"] != chain_only]) == as_set(
            world.expected_findings().query("entity_id != @chain_only")
        )
    counts_before = found.groupby("partition_key").size()
    run_streams(database_url, devnet, days[1])
    counts_after = persisted_findings(engine).groupby("partition_key").size()
    assert counts_after.to_dict() == counts_before.to_dict()


def test_a_day_past_the_event_window_discovers_its_chain_only_streams_from_ledger_metadata(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
) -> None:
    """The chain-only stream was created 36 hours ago. Once that day has left getEvents's window, the
    nightly run of the day replays the day's ledgers and still finds it, with the same findings."""
    created = datetime.fromtimestamp(ledger.ledger_close_time(ledger.latest_ledger), UTC) - timedelta(hours=36)
    day = created.strftime("%Y-%m-%d")
    inside = run_streams(database_url, devnet, day)
    found_inside = as_set(persisted_findings(engine, inside.run_id))  # the next run of the day replaces them
    ledger.retention_window = ledger.latest_ledger - ledger.ledger_closed_by(
        (datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)).timestamp()) - 10
    beyond = run_streams(database_url, devnet, day)
    metadata = beyond.asset_materializations_for_node("chain_streams")[0].metadata
    assert metadata["discovery_source"].value == "getLedgers"
    assert metadata["keys_discovered_on_chain"].value == len(world.chain_only_ids) == 1
    assert as_set(persisted_findings(engine, beyond.run_id)) == found_inside
    chain_only = f"stream_{world.chain_only_ids[0]}"
    assert chain_only in set(persisted_findings(engine, beyond.run_id)["entity_id"])


def test_a_day_neither_window_serves_still_reconciles_its_rows(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    """Discovery of chain-only streams for a day no RPC window reaches falls back to getEvents's window
    (and says so); the day's rows are still compared with the chain."""
    ledger.retention_window, ledger.ledger_retention_window = 100, 200
    result = run_streams(database_url, devnet, yesterday)
    metadata = result.asset_materializations_for_node("chain_streams")[0].metadata
    assert metadata["discovery_source"].value == "getEvents (the partition's day is outside both windows)"
    found = as_set(persisted_findings(engine, result.run_id))
    expected = world.expected_findings()
    chain_only = expected["entity_id"] == f"stream_{world.chain_only_ids[0]}"
    assert found == as_set(expected[~chain_only])  # everything but the stream only the chain knows


def _escrow_state(engine: sa.Engine, token: str) -> str:
    return incidents(engine).set_index(["entity_id", "drift_class"])["state"][(token, "INVARIANT_VIOLATION")]


def test_unread_streams_make_escrow_solvency_not_established_and_keep_its_incident(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, yesterday: str,
) -> None:
    eurc = world.identities.eurc_contract_id
    run_streams(database_url, devnet, yesterday)
    assert _escrow_state(engine, eurc) == "open"
    # One EURC stream's batch (200 streams) fails on every attempt; the escrow's balance reads.
    owing = world.db[(world.db["token"] == eurc) & world.db["status"].isin(["active", "paused"])]
    poisoned = u64_entry_key(DEVNET.stream_contract_id, "Stream", int(owing.iloc[0]["stream_id"]))
    ledger.faults = FaultConfig(poison_keys=frozenset({poisoned}))

    partial = run_streams(database_url, devnet, yesterday)

    escrow = partial.output_for_node("chain_stream_escrow")
    row = escrow.frame.set_index("token").loc[eurc]
    assert row["read_status"] == "ok" and row["unreadable_streams"] > 0 and row["solvent"] is None
    assert eurc not in set(escrow.checked.entities["entity_id"])
    found = persisted_findings(engine, partial.run_id).query("entity_type == 'escrow' and entity_id == @eurc")
    assert found["drift_class"].tolist() == ["CHAIN_READ_ERROR"]
    assert found.iloc[0]["details"]["error"].startswith("solvency could not be established")
    assert _escrow_state(engine, eurc) == "open"


@pytest.mark.parametrize("failure_rate", [0.1, 0.25, 0.5])
def test_no_failure_rate_resolves_an_escrow_shortfall(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, yesterday: str, failure_rate: float,
) -> None:
    eurc = world.identities.eurc_contract_id
    run_streams(database_url, devnet, yesterday)
    ledger.faults = FaultConfig(failure_rate=failure_rate, failure_seed=11, methods=frozenset({"getLedgerEntries"}))
    partial = run_streams(database_url, devnet, yesterday, max_attempts=1)
    escrow = persisted_findings(engine, partial.run_id).query("entity_type == 'escrow' and entity_id == @eurc")
    assert len(escrow) == 1
    if escrow.iloc[0]["drift_class"] == "INVARIANT_VIOLATION":
        unread = escrow.iloc[0]["details"]["unreadable_streams"]
        assert escrow.iloc[0]["details"]["shortfall_is_lower_bound"] is (unread > 0)
    assert _escrow_state(engine, eurc) != "resolved"


def test_a_key_two_rows_share_is_one_finding_and_neither_row_is_compared(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str,
) -> None:
    """An app table without the reference schema's primary key: stream 2 (whose released amount
    drifts) is written twice, once with a different total."""
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE streams DROP CONSTRAINT streams_pkey"))
        connection.execute(sa.text(
            "INSERT INTO streams SELECT id, sender_address, recipient_address, token_address, total_amount + 1, "
            "released_amount, status, created_at, updated_at FROM streams WHERE id = 2"))
    result = run_streams(database_url, devnet, yesterday)
    found = persisted_findings(engine, result.run_id)
    stream_2 = found[found["entity_id"] == "stream_2"]
    assert stream_2[["field", "drift_class", "db_value"]].values.tolist() == [["stream_id", "INVARIANT_VIOLATION", "2"]]
    assert stream_2.iloc[0]["details"]["rows"] == 2
    expected = world.expected_findings()
    assert as_set(found[found["entity_id"] != "stream_2"]) == as_set(expected[expected["entity_id"] != "stream_2"])
    diff = result.output_for_node("stream_discrepancies")
    assert "stream_2" not in set(diff.checked.entities["entity_id"])
    assert result.output_for_node("db_streams").duplicate_keys == ("2",)
