"""A streaming full sweep finds exactly what a whole-frame sweep finds.

The same seeded world (every drift class of its catalogue, plus a run of
entities missing on chain and a run known only on chain, each longer than a
chunk) is swept twice against real PostgreSQL and the devnet over HTTP: once
with whole frames (`sweep_chunk_rows=0`, today's path) and streamed in chunks
of 7 rows, so chunk boundaries fall inside every run: once in the run's process
(`sweep_workers=1`) and once in two forked worker processes. The persisted
findings, the run's counts and the coverage it recorded must be the same.
"""

from __future__ import annotations

import multiprocessing
import os
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from stellar_sdk import scval

from recon_demo.worlds.balances import build_balances_world, load_balances_into_ledger, write_balances_to_db
from recon_demo.worlds.streams import (
    CHAIN_ONLY_CREATED_HOURS_AGO,
    SECONDS_PER_LEDGER,
    build_streams_world,
    load_streams_into_ledger,
    write_streams_to_db,
)
from reconciliation_pipeline.chain.keys import u64_entry_key
from reconciliation_pipeline.core import streaming
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, SWEEP_TAG
from reconciliation_pipeline.defs.balances import rules as balance_rules
from reconciliation_pipeline.defs.balances.definitions import BALANCES
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

CHUNK_ROWS = 7
COMPARED = ["entity_type", "entity_id", "field", "drift_class", "severity", "db_value", "chain_value", "delta",
            "ledger_sequence", "details", "asset_code", "asset_issuer", "asset_contract_id", "asset_decimals",
            "amount_at_stake", "partition_key"]


def _same_in_either_run(details: dict[str, Any]) -> dict[str, Any]:
    """The details less what depends on when a run ran, not on how it read: where an origin was
    looked up (the second run finds the first's ledgers in recon.ledgers) and a TTL's wall-clock
    estimate (now + ledgers left)."""
    kept = {k: v for k, v in details.items() if k not in ("expires_at_estimated", "expired_at_estimated")}
    if isinstance(kept.get("origin"), dict):
        kept["origin"] = {k: v for k, v in kept["origin"].items() if k != "looked_up"}
    return kept


def findings_of(engine: sa.Engine, run_id: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        frame = pd.read_sql(sa.text("SELECT * FROM recon.discrepancies WHERE run_id = :run_id"), connection,
                            params={"run_id": run_id})
    frame["details"] = [_same_in_either_run(d) for d in frame["details"]]
    rows = frame[COMPARED].astype(object).where(frame[COMPARED].notna(), None)
    return sorted((tuple(str(v) for v in row) for row in rows.itertuples(index=False)))


def run_summary(engine: sa.Engine, run_id: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(sa.text(
            "SELECT domain, status, entities_checked, entities_unchecked, finding_counts::text FROM recon.runs "
            "WHERE run_id = :run_id ORDER BY domain"), {"run_id": run_id})]


def coverage_of(engine: sa.Engine, run_id: str) -> set[tuple[str, str, bool]]:
    with engine.connect() as connection:
        return {tuple(r) for r in connection.execute(sa.text(
            "SELECT entity_type, entity_id, last_checked_at IS NOT DISTINCT FROM last_known_at "
            "FROM recon.entity_coverage "
            "WHERE last_run_id = :run_id"), {"run_id": run_id})}


def sweep(assets: list[dg.AssetsDefinition], database_url: str, devnet: DevnetServer, engine: sa.Engine,
          chunk_rows: int, workers: int = 1, rpc: dict[str, int] | None = None,
          **kwargs: Any) -> tuple[dg.ExecuteInProcessResult, list[tuple], list[tuple], set[tuple]]:
    resources = make_resources(database_url, devnet.url, settings={"sweep_chunk_rows": chunk_rows,
                                                                   "sweep_workers": workers}, **(rpc or {}))
    result = dg.materialize(assets, resources=resources, tags={SWEEP_TAG: FULL_SWEEP}, raise_on_error=True, **kwargs)
    return (result, findings_of(engine, result.run_id), run_summary(engine, result.run_id),
            coverage_of(engine, result.run_id))


def metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_a_streamed_streams_sweep_finds_what_a_whole_frame_sweep_finds(
    engine: sa.Engine, ledger: DevnetLedger, database_url: str, devnet: DevnetServer,
    reference_time: datetime, yesterday: str,
) -> None:
    world = build_streams_world(300, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    contract = world.identities.stream_contract_id
    # A run of 20 streams gone from the chain, and a run of 15 (and the very first stream) the
    # database lost that the chain announced with stream_created events.
    for stream_id in range(40, 60):
        assert ledger.remove_entry(u64_entry_key(contract, "Stream", stream_id))
    lost = [1, *range(100, 115)]
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM streams WHERE id = ANY(:ids)"), {"ids": lost})
    created = ledger.latest_ledger - CHAIN_ONLY_CREATED_HOURS_AGO * 3600 // SECONDS_PER_LEDGER
    for stream_id in lost:
        ledger.add_event(contract_id=contract, topic=[scval.to_symbol("stream_created"), scval.to_uint64(stream_id)],
                         value=scval.to_int128(1), ledger=created)

    assets = STREAMS.assets("nightly")
    whole, whole_findings, whole_runs, whole_coverage = sweep(assets, database_url, devnet, engine, 0,
                                                              partition_key=yesterday)
    assert "streaming_sweep" not in metadata(whole, "chain_streams")
    for workers in (1, 2):
        streamed, streamed_findings, streamed_runs, streamed_coverage = sweep(
            assets, database_url, devnet, engine, CHUNK_ROWS, workers, partition_key=yesterday)

        chain = metadata(streamed, "chain_streams")
        assert chain["streaming_sweep"] is True and chain["streamed_chunks"] >= 280 // CHUNK_ROWS
        assert chain["sweep_worker_processes"] == (0 if workers == 1 else workers)
        assert chain["dagster/row_count"] == metadata(whole, "chain_streams")["dagster/row_count"]
        assert chain["keys_discovered_on_chain"] == metadata(whole, "chain_streams")["keys_discovered_on_chain"] >= 17
        # The database side came through COPY (parsed by Arrow), not the cursor.
        assert metadata(streamed, "db_streams")["read_by"] == "copy"
        classes = {row[3] for row in streamed_findings}
        assert {"MISSING_ON_CHAIN", "MISSING_IN_DB", "VALUE_MISMATCH", "STATUS_MISMATCH", "INVARIANT_VIOLATION",
                "INVALID_ADDRESS", "CHAIN_READ_ERROR"} <= classes
        assert sum(row[3] == "MISSING_ON_CHAIN" for row in streamed_findings) >= 20
        assert streamed_findings == whole_findings
        assert streamed_runs == whole_runs
        assert streamed_coverage == whole_coverage
        # Escrow solvency is folded per worker and merged: the sums are the whole frames'.
        assert metadata(streamed, "chain_stream_escrow")["escrow"] == metadata(whole, "chain_stream_escrow")["escrow"]


def test_a_streamed_balances_sweep_finds_what_a_whole_frame_sweep_finds(
    engine: sa.Engine, ledger: DevnetLedger, database_url: str, devnet: DevnetServer,
) -> None:
    world = build_balances_world(300)
    write_balances_to_db(engine, world)
    load_balances_into_ledger(ledger, world)
    # A run of 15 holders (by user id) whose entries are gone: accounts without a trustline are
    # missing on chain, contracts without a balance entry hold 0.
    holders = world.db[world.db["wallet_address"].map(lambda w: isinstance(w, str))].sort_values("user_id")
    gone = holders.iloc[60:75].reset_index(drop=True)
    keys = balance_rules.holding_keys(gone, make_resources(database_url, devnet.url)["contracts"]).keys
    assert sum(ledger.remove_entry(key) for key in set(keys)) >= 10

    assets = BALANCES.assets("frequent")
    whole, whole_findings, whole_runs, whole_coverage = sweep(assets, database_url, devnet, engine, 0)
    for workers in (1, 2):
        streamed, streamed_findings, streamed_runs, streamed_coverage = sweep(assets, database_url, devnet, engine,
                                                                              CHUNK_ROWS, workers)

        chain = metadata(streamed, "chain_usdc_balances")
        assert chain["streaming_sweep"] is True
        assert metadata(streamed, "db_usdc_balances")["read_by"] == "copy"
        assert chain["sweep_worker_processes"] == (0 if workers == 1 else workers)
        classes = {row[3] for row in streamed_findings}
        assert {"MISSING_ON_CHAIN", "VALUE_MISMATCH", "INVARIANT_VIOLATION", "INVALID_ADDRESS"} <= classes
        assert streamed_findings == whole_findings
        assert streamed_runs == whole_runs
        assert streamed_coverage == whole_coverage


def test_worker_processes_share_the_requests_in_flight(
    engine: sa.Engine, ledger: DevnetLedger, database_url: str, devnet: DevnetServer, reference_time: datetime,
    yesterday: str,
) -> None:
    """Two workers, each reading its chunks 2 keys per request with 2 requests in flight, hold
    one shared pair of request slots: the devnet never has more than 2 requests waiting at once
    (each worker's own bound would allow 4)."""
    world = build_streams_world(120, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    ledger.faults = FaultConfig(latency_s=0.02, methods=frozenset({"getLedgerEntries"}))
    ledger.reset_counters()
    result, found, _, _ = sweep(STREAMS.assets("nightly"), database_url, devnet, engine, 20, 2,
                                rpc={"max_in_flight": 2, "batch_size": 2}, partition_key=yesterday)

    assert metadata(result, "chain_streams")["sweep_worker_processes"] == 2
    assert ledger.request_counts["getLedgerEntries"] >= 50
    assert ledger.peak_in_flight["getLedgerEntries"] == 2
    assert found


@pytest.mark.parametrize("chunk_rows", [0, CHUNK_ROWS])
def test_a_key_shared_by_rows_across_a_chunk_boundary_is_one_duplicate_finding(
    engine: sa.Engine, ledger: DevnetLedger, database_url: str, devnet: DevnetServer, reference_time: datetime,
    yesterday: str, chunk_rows: int,
) -> None:
    """Rows sharing a key are compared by neither path; streamed, their rows may arrive in two chunks."""
    world = build_streams_world(40, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    with engine.begin() as connection:
        # Without its primary key the table takes a second row for stream 7 (rows 7 and 7 straddle 7|8).
        connection.execute(sa.text("ALTER TABLE streams DROP CONSTRAINT streams_pkey CASCADE"))
        connection.execute(sa.text("INSERT INTO streams SELECT * FROM streams WHERE id = 7"))
    _, found, runs, _ = sweep(STREAMS.assets("nightly"), database_url, devnet, engine, chunk_rows,
                              partition_key=yesterday)
    duplicates = [row for row in found if row[1] == "stream_7"]
    assert [(row[2], row[3]) for row in duplicates] == [("stream_id", "INVARIANT_VIOLATION")]


def test_a_worker_process_that_dies_fails_the_sweep_with_a_clear_error(
    engine: sa.Engine, ledger: DevnetLedger, database_url: str, devnet: DevnetServer, reference_time: datetime,
    yesterday: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker killed mid-sweep (the OOM killer, say) fails the chain step with what happened and
    what to do; no finding of the run is persisted. Workers are forked, so they run the patch."""
    world = build_streams_world(60, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    diff_chunk = streaming._diff_chunk

    def dies_past_row_8(state: Any, reader: Any, task: Any) -> Any:
        if task.rows is not None and task.rows[0] >= 8:
            os._exit(9)
        return diff_chunk(state, reader, task)

    monkeypatch.setattr(streaming, "_diff_chunk", dies_past_row_8)
    resources = make_resources(database_url, devnet.url, settings={"sweep_chunk_rows": CHUNK_ROWS, "sweep_workers": 2})
    result = dg.materialize(STREAMS.assets("nightly"), resources=resources, tags={SWEEP_TAG: FULL_SWEEP},
                            partition_key=yesterday, raise_on_error=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "chain_streams")
    assert "a sweep worker process ended before its chunk was diffed" in str(failure.event_specific_data.error)
    assert findings_of(engine, result.run_id) == []


def _workers_in_a_daemon(answers: Any) -> None:
    answers.put(streaming.sweep_workers(4, 5, 10))


def test_a_chunk_is_shared_among_the_workers_in_whole_request_batches() -> None:
    assert streaming.rows_per_task(25_000, 2, 200) == 12_400
    assert streaming.rows_per_task(25_000, 3, 200) == 8_200
    assert streaming.rows_per_task(7, 2, 200) == 4, "a share smaller than a batch is not rounded up"
    assert streaming.rows_per_task(7, 1, 200) == 7


def test_how_many_worker_processes_a_sweep_gets() -> None:
    assert streaming.sweep_workers(4, 5, 10) == 4
    assert streaming.sweep_workers(4, 2, 10) == 2, "never more workers than requests in flight"
    assert streaming.sweep_workers(0, 64, 10) == len(os.sched_getaffinity(0)), "0: one per usable core"
    assert streaming.sweep_workers(4, 5, 1) == 1, "a one-chunk sweep stays in the run's process"
    fork = multiprocessing.get_context("fork")
    answers = fork.Queue()
    daemon = fork.Process(target=_workers_in_a_daemon, args=(answers,), daemon=True)
    daemon.start()
    daemon.join(timeout=30)
    assert answers.get(timeout=5) == 1, "a daemon process may not have children"
