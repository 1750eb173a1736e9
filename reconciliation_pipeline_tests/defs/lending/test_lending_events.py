"""Lending event indexing: days mapped to ledgers through getLedgers, events read with
cursor paging, stored per day, replaced on re-run, backfilled over a range, and refused
outside the RPC's retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from stellar_sdk import SorobanServer, scval
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.exceptions import SorobanRpcErrorResponse

from recon_demo.worlds.lending import LendingWorld
from reconciliation_pipeline.chain.history import ledger_window
from reconciliation_pipeline.chain.reader import ChainReader, ReaderSettings, RetentionWindowError
from reconciliation_pipeline_tests.conftest import make_resources
from reconciliation_pipeline_tests.defs.lending.conftest import LENDING_ASSETS, as_set, findings_of, run_nightly, table
from soroban_devnet.ledger import LEDGER_SCAN_LIMIT, MANUAL_CLOSE_SPACING_S, DevnetLedger
from soroban_devnet.ledgers_method import MAX_LEDGERS_LIMIT
from soroban_devnet.server import DevnetServer
from soroban_devnet.transactions import TransactionStore

EVENT_ROWS = ("SELECT event_id, partition_key, ledger, ledger_closed_at, tx_hash, event_type, loan_id::text, address,"
              " amount::text, loan_status, decode_error FROM recon.lending_events ORDER BY event_id")


def _day(reference_time: datetime, days_back: int) -> str:
    return (reference_time - timedelta(days=days_back)).strftime("%Y-%m-%d")


def test_get_ledgers_pages_through_close_times_like_stellar_rpc(
    ledger: DevnetLedger, transactions: TransactionStore, devnet: DevnetServer
) -> None:
    with SorobanServer(devnet.url, client=RequestsClient(num_retries=0)) as rpc:
        first = rpc.get_ledgers(start_ledger=ledger.latest_ledger - 4, limit=3)
        rest = rpc.get_ledgers(cursor=first.cursor, limit=MAX_LEDGERS_LIMIT)
        with pytest.raises(SorobanRpcErrorResponse, match=f"oldest ledger: {ledger.oldest_ledger}"):
            rpc.get_ledgers(start_ledger=ledger.oldest_ledger - 1)
    sequences = [info.sequence for info in first.ledgers + rest.ledgers]
    assert sequences == list(range(ledger.latest_ledger - 4, ledger.latest_ledger + 1))
    assert [info.ledger_close_time for info in first.ledgers] == [ledger.ledger_close_time(s) for s in sequences[:3]]
    assert first.cursor == str(sequences[2])
    assert (first.latest_ledger, first.oldest_ledger) == (ledger.latest_ledger, ledger.oldest_ledger)


def test_a_day_maps_to_exactly_the_ledgers_that_closed_in_it(
    ledger: DevnetLedger, transactions: TransactionStore, devnet: DevnetServer, reference_time: datetime
) -> None:
    start = (reference_time - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)
    reader = ChainReader(devnet.url, ReaderSettings(backoff_initial_s=0.01))
    try:
        window, searches = ledger_window(reader, start, end)
        with pytest.raises(RetentionWindowError, match=f"oldest ledger available is {ledger.oldest_ledger}"):
            ledger_window(reader, start - timedelta(days=10), end)
    finally:
        reader.close()
    assert ledger.ledger_close_time(window.start_ledger) >= start.timestamp() > ledger.ledger_close_time(
        window.start_ledger - 1)
    assert ledger.ledger_close_time(window.end_ledger) >= end.timestamp() > ledger.ledger_close_time(
        window.end_ledger - 1)
    assert window.complete and window.ledgers > LEDGER_SCAN_LIMIT  # one day needs several getEvents scans
    assert searches <= 8  # interpolated searches (a binary search needs about 17 probes per bound)


lending_events = next(a for a in LENDING_ASSETS if a.key.to_user_string() == "lending_events")


def _index(database_url: str, devnet: DevnetServer, **partition: str) -> dg.ExecuteInProcessResult:
    if "start" in partition:
        tags = {"dagster/asset_partition_range_start": partition["start"],
                "dagster/asset_partition_range_end": partition["end"]}
        return dg.materialize([lending_events], resources=make_resources(database_url, devnet.url), tags=tags)
    return dg.materialize([lending_events], resources=make_resources(database_url, devnet.url),
                          partition_key=partition["day"], raise_on_error=False)


def test_a_backfill_over_three_days_equals_three_single_day_runs(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    reference_time: datetime,
) -> None:
    days = [_day(reference_time, back) for back in (3, 2, 1)]
    ledger.reset_counters()
    backfill = _index(database_url, devnet, start=days[0], end=days[-1])
    assert backfill.success and ledger.request_counts["getLedgers"] < 40  # one ledger search for the whole range
    after_backfill = table(engine, EVENT_ROWS)
    downstream = [a for a in LENDING_ASSETS if a.key != lending_events.key]
    backfilled_findings = {}
    for day in days:
        run = dg.materialize(downstream, resources=make_resources(database_url, devnet.url), partition_key=day)
        backfilled_findings[day] = as_set(findings_of(engine, run.run_id))

    for day in days:
        run_nightly(database_url, devnet, day)
        assert as_set(findings_of(engine, partition=day)) == backfilled_findings[day]
    after_single_days = table(engine, EVENT_ROWS)

    pd.testing.assert_frame_equal(after_backfill, after_single_days)
    assert sorted(set(after_backfill["partition_key"])) == days
    assert len(after_backfill) == len(world.events)
    assert after_backfill.groupby("partition_key").size().min() > 0
    missed = world.drift("missed_loan_created_event").expected[0].entity_id
    assert [missed in {f[1] for f in backfilled_findings[day]} for day in days] == [False, False, True]
    assert "sendTransaction" not in ledger.request_counts


def test_re_indexing_a_day_replaces_its_rows_and_keeps_undecodable_events(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    # Noon of yesterday's partition, whatever the time of day the test runs at.
    noon = datetime.fromisoformat(yesterday).replace(tzinfo=UTC) + timedelta(hours=12)
    latest = ledger.latest_ledger
    bad_ledger = latest - int(ledger.ledger_close_time(latest) - noon.timestamp()) // MANUAL_CLOSE_SPACING_S
    day = datetime.fromtimestamp(ledger.ledger_close_time(bad_ledger), UTC).strftime("%Y-%m-%d")
    assert day == yesterday
    ledger.add_event(contract_id=world.identities.lending_contract_id, ledger=bad_ledger,
                     topic=[scval.to_symbol("loan_repaid"), scval.to_symbol("oops")], value=scval.to_int128(5))
    first = _index(database_url, devnet, day=day)
    before = table(engine, EVENT_ROWS)
    second = _index(database_url, devnet, day=day)
    after = table(engine, EVENT_ROWS)
    pd.testing.assert_frame_equal(before, after)
    bad = after[after["decode_error"].notna()]
    assert len(bad) == 1 and bad.iloc[0]["event_type"] == "loan_repaid" and "loan_id" in bad.iloc[0]["decode_error"]
    check = second.get_asset_check_evaluations()[0]
    assert first.success and not check.passed and check.metadata["undecodable"].value == 1


def test_a_day_outside_retention_is_refused_naming_the_oldest_ledger(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    reference_time: datetime,
) -> None:
    ledger.reset_counters()
    result = _index(database_url, devnet, day=_day(reference_time, 10))
    assert not result.success
    messages = " ".join(
        str(e.event_specific_data.error.message)
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data is not None
    )
    assert f"oldest ledger available is {ledger.oldest_ledger}" in messages
    assert table(engine, "SELECT count(*) AS n FROM recon.lending_events")["n"][0] == 0
    assert ledger.request_counts["getEvents"] == 0
