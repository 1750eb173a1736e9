"""`ChainReader` against the devnet over real HTTP (unmodified stellar_sdk client).

Request counts come from the devnet's own counter, so batching and retries are
measured on the server side, not taken from the reader's word.
"""

from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass

import pytest
from stellar_sdk import scval, xdr

from recon_demo.identities import contract_id
from reconciliation_pipeline.chain.keys import enum_key, u64_entry_key
from reconciliation_pipeline.chain.reader import (
    MAX_KEYS_PER_REQUEST,
    ChainReader,
    ReaderSettings,
    RetentionWindowError,
    scval_topic,
)
from soroban_devnet.entries import contract_data_entry
from soroban_devnet.ledger import INJECTED_FAILURE_MESSAGE, DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

CONTRACT = contract_id("reader-test")
OTHER_CONTRACT = contract_id("reader-test-other")
FAST = ReaderSettings(backoff_initial_s=0.001)


@dataclass(frozen=True)
class Seeded:
    """What the test put on chain for one key."""

    data_xdr: str
    last_modified: int
    live_until: int | None


def entry_key(i: int) -> str:
    return u64_entry_key(CONTRACT, "Item", i)


def seed_entries(ledger: DevnetLedger, ids: list[int]) -> dict[str, Seeded]:
    """Put one real contract-data entry per id; each with its own last-modified ledger."""
    seeded: dict[str, Seeded] = {}
    for i in ids:
        key = entry_key(i)
        data = contract_data_entry(CONTRACT, enum_key("Item", scval.to_uint64(i)), scval.to_int128(i * 7 - 3)).to_xdr()
        last_modified = 1_990_000 + i
        live_until = 2_100_000 + i if i % 3 == 0 else None
        ledger.put_raw_entry(key, data, last_modified=last_modified, live_until=live_until)
        seeded[key] = Seeded(data, last_modified, live_until)
    return seeded


def mixed_keys(n: int) -> tuple[list[str], list[int]]:
    """n distinct keys; roughly two in three exist (returned ids), the rest are absent."""
    ids = list(range(n))
    return [entry_key(i) for i in ids], [i for i in ids if i % 3 != 1]


# -- getLedgerEntries: batching --------------------------------------------


@pytest.mark.parametrize("n", [1, 199, 200, 201, 1000])
def test_reads_every_entry_in_ceil_n_over_200_requests(ledger: DevnetLedger, devnet: DevnetServer, n: int) -> None:
    """N keys cost exactly ceil(N/200) getLedgerEntries requests (counted by the devnet);
    every existing entry comes back exactly as stored; absent keys are in neither map."""
    keys, existing = mixed_keys(n)
    seeded = seed_entries(ledger, existing)
    ledger.reset_counters()
    progress: list[tuple[int, int]] = []
    reader = ChainReader(devnet.url, FAST)
    try:
        result = reader.get_entries(keys, progress=lambda done, total: progress.append((done, total)))
    finally:
        reader.close()

    batches = math.ceil(n / MAX_KEYS_PER_REQUEST)
    assert ledger.request_counts["getLedgerEntries"] == batches
    assert result.requests == batches
    assert result.failed == {} and result.failed_batches == 0
    assert set(result.entries) == set(seeded)
    for key, want in seeded.items():
        got = result.entries[key]
        assert got.data_xdr == want.data_xdr
        assert got.last_modified_ledger == want.last_modified
        assert got.live_until_ledger == want.live_until
        assert got.read_at_ledger == ledger.latest_ledger
    absent = set(keys) - set(seeded)
    assert (n == 1) or absent, "the mix must contain absent keys"
    assert not absent & set(result.entries) and not absent & set(result.failed)
    assert result.latest_ledger == ledger.latest_ledger
    assert progress == [(i, batches) for i in range(1, batches + 1)]


def test_absent_single_key_costs_one_request_and_is_reported_nowhere(
    ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    """A lone absent key: one request, nothing in `entries`, nothing in `failed`."""
    ledger.reset_counters()
    reader = ChainReader(devnet.url, FAST)
    try:
        result = reader.get_entries([entry_key(42)])
    finally:
        reader.close()
    assert ledger.request_counts["getLedgerEntries"] == 1
    assert result.entries == {} and result.failed == {} and result.requests == 1


def test_duplicate_keys_are_read_once(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """201 distinct keys, each given three times: still two requests (not four)."""
    keys, existing = mixed_keys(201)
    seeded = seed_entries(ledger, existing)
    ledger.reset_counters()
    reader = ChainReader(devnet.url, FAST)
    try:
        result = reader.get_entries(keys + list(reversed(keys)) + keys)
    finally:
        reader.close()
    assert ledger.request_counts["getLedgerEntries"] == 2
    assert result.requests == 2
    assert set(result.entries) == set(seeded)


def test_empty_key_list_sends_nothing(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """No keys: no request at all."""
    reader = ChainReader(devnet.url, FAST)
    try:
        result = reader.get_entries([])
    finally:
        reader.close()
    assert sum(ledger.request_counts.values()) == 0
    assert result.requests == 0 and result.entries == {} and result.failed == {}


# -- bounded concurrency ----------------------------------------------------


def test_requests_in_flight_are_bounded(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """6 batches at 0.2 s each with max_in_flight=2 take at least 3 x 0.2 s
    (6 unbounded parallel requests would take about 0.2 s)."""
    seeded = seed_entries(ledger, list(range(6)))
    latency = 0.2
    ledger.faults = FaultConfig(latency_s=latency, methods=frozenset({"getLedgerEntries"}))
    ledger.reset_counters()
    reader = ChainReader(devnet.url, ReaderSettings(batch_size=1, max_in_flight=2, backoff_initial_s=0.001))
    try:
        started = time.perf_counter()
        result = reader.get_entries(list(seeded))
        elapsed = time.perf_counter() - started
    finally:
        reader.close()
    assert ledger.request_counts["getLedgerEntries"] == 6
    assert set(result.entries) == set(seeded)
    assert elapsed >= 3 * latency


# -- retries ------------------------------------------------------------------


def test_transient_failures_are_retried_until_every_batch_succeeds(
    ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    """With half of all requests failing (seed 3, one request at a time so the draw
    order is fixed), some first attempts fail and their retries succeed: every
    entry arrives, and attempts (counted by the devnet) exceed the batch count."""
    keys, existing = mixed_keys(1000)
    seeded = seed_entries(ledger, existing)
    ledger.faults = FaultConfig(failure_rate=0.5, failure_seed=3, methods=frozenset({"getLedgerEntries"}))
    ledger.reset_counters()
    sleeps: list[float] = []
    reader = ChainReader(
        devnet.url, ReaderSettings(max_in_flight=1, max_attempts=4, backoff_initial_s=0.001), sleep=sleeps.append
    )
    try:
        result = reader.get_entries(keys)
    finally:
        reader.close()
    batches = 5
    assert result.failed == {} and result.failed_batches == 0
    assert set(result.entries) == set(seeded)
    assert result.requests == ledger.request_counts["getLedgerEntries"]
    assert result.requests > batches
    # one backoff sleep before each retry
    assert len(sleeps) == result.requests - batches


def test_poisoned_key_fails_only_its_batch(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """A key that always fails takes down exactly its batch (every key of it, with
    the injected error and the attempt count); the other batches succeed."""
    keys, existing = mixed_keys(1000)
    seeded = seed_entries(ledger, existing)
    poisoned = keys[450]  # in the third batch: keys[400:600]
    ledger.faults = FaultConfig(poison_keys=frozenset({poisoned}))
    ledger.reset_counters()
    reader = ChainReader(devnet.url, ReaderSettings(max_attempts=3, backoff_initial_s=0.001))
    try:
        result = reader.get_entries(keys)
    finally:
        reader.close()
    bad_batch = set(keys[400:600])
    assert result.failed_batches == 1
    assert set(result.failed) == bad_batch
    for message in result.failed.values():
        assert INJECTED_FAILURE_MESSAGE in message
        assert "after 3 attempts" in message
    assert set(result.entries) == {k for k in seeded if k not in bad_batch}
    assert result.requests == 4 + 3
    assert ledger.request_counts["getLedgerEntries"] == 4 + 3


def test_backoff_doubles_from_the_initial_delay(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """Four attempts of a failing batch sleep 1x, 2x, 4x the initial backoff in between."""
    key = entry_key(1)
    seed_entries(ledger, [1])
    ledger.faults = FaultConfig(poison_keys=frozenset({key}))
    ledger.reset_counters()
    sleeps: list[float] = []
    initial = 0.001
    reader = ChainReader(
        devnet.url, ReaderSettings(max_attempts=4, backoff_initial_s=initial), sleep=sleeps.append
    )
    try:
        result = reader.get_entries([key])
    finally:
        reader.close()
    assert sleeps == pytest.approx([initial, 2 * initial, 4 * initial])
    assert result.requests == 4 == ledger.request_counts["getLedgerEntries"]
    assert "after 4 attempts" in result.failed[key]


def test_invalid_params_error_is_not_retried(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """A key that is not LedgerKey XDR draws -32602 (invalid params): one attempt,
    no backoff, only that batch fails; its neighbours (own batches) are read."""
    seeded = seed_entries(ledger, [1, 2])
    bad_key = base64.b64encode(b"not a ledger key").decode()
    ledger.reset_counters()
    sleeps: list[float] = []
    reader = ChainReader(
        devnet.url, ReaderSettings(batch_size=1, max_attempts=5, backoff_initial_s=0.001), sleep=sleeps.append
    )
    try:
        result = reader.get_entries([entry_key(1), bad_key, entry_key(2)])
    finally:
        reader.close()
    assert set(result.failed) == {bad_key}
    assert "-32602" in result.failed[bad_key]
    assert "after 1 attempt" in result.failed[bad_key]
    assert set(result.entries) == set(seeded)
    assert sleeps == []
    assert result.requests == 3 == ledger.request_counts["getLedgerEntries"]


def test_request_timeout_fails_the_batch_after_max_attempts(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """Latency 0.5 s above a 0.2 s per-request timeout: both attempts time out and
    the batch lands in `failed` instead of waiting for the slow server."""
    seeded = seed_entries(ledger, [1, 2, 3])
    ledger.faults = FaultConfig(latency_s=0.5, methods=frozenset({"getLedgerEntries"}))
    ledger.reset_counters()
    reader = ChainReader(
        devnet.url, ReaderSettings(max_attempts=2, request_timeout_s=0.2, backoff_initial_s=0.001)
    )
    try:
        started = time.perf_counter()
        result = reader.get_entries(list(seeded))
        elapsed = time.perf_counter() - started
    finally:
        reader.close()
    assert result.entries == {}
    assert set(result.failed) == set(seeded)
    assert result.failed_batches == 1 and result.requests == 2
    assert ledger.request_counts["getLedgerEntries"] == 2
    assert all("after 2 attempts" in m for m in result.failed.values())
    assert elapsed >= 2 * 0.2


# -- getEvents ----------------------------------------------------------------


def _topic(kind: str, n: int) -> list[xdr.SCVal]:
    return [scval.to_symbol(kind), scval.to_uint64(n)]


@dataclass(frozen=True)
class SeededEvent:
    id: str
    ledger: int
    contract_id: str
    kind: str
    n: int


def seed_events(ledger: DevnetLedger) -> list[SeededEvent]:
    """Events spread over the whole retention window (far more than 10,000 ledgers),
    a burst of 25 in one ledger, events on the oldest and latest ledger, two
    contracts and two topics. Returned in id order."""
    oldest, latest = ledger.oldest_ledger, ledger.latest_ledger
    assert latest - oldest > 10_000
    placements: list[tuple[int, int]] = []  # (ledger, tx_index)
    placements += [(oldest, 1), (latest, 1), (latest, 2)]
    placements += [(oldest + 9_999, 1), (oldest + 10_000, 1), (oldest + 10_001, 3)]
    placements += [(oldest + 1 + (i * 1_237) % (latest - oldest - 1), 1 + i % 4) for i in range(120)]
    placements += [(1_950_000, 5)] * 25
    events: list[SeededEvent] = []
    for n, (seq, tx_index) in enumerate(placements):
        contract = CONTRACT if n % 5 else OTHER_CONTRACT
        kind = "deposit" if n % 2 else "withdraw"
        event_id = ledger.add_event(
            contract_id=contract, topic=_topic(kind, n), value=scval.to_int128(n), ledger=seq, tx_index=tx_index
        )
        events.append(SeededEvent(event_id, seq, contract, kind, n))
    return sorted(events, key=lambda e: e.id)


def test_events_over_a_long_window_arrive_once_each_in_order(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """Paging with a small page limit over ~121,000 ledgers returns every event of
    the contract exactly once, in id order, including the oldest and latest ledger."""
    seeded = seed_events(ledger)
    want = [e for e in seeded if e.contract_id == CONTRACT]
    ledger.reset_counters()
    reader = ChainReader(devnet.url, FAST)
    try:
        events, latest = reader.get_events(contract_ids=[CONTRACT], page_limit=7)
    finally:
        reader.close()
    assert latest == ledger.latest_ledger
    assert [e.id for e in events] == [e.id for e in want]
    assert [e.ledger for e in events] == [e.ledger for e in want]
    assert [scval.from_uint64(xdr.SCVal.from_xdr(e.topic[1])) for e in events] == [e.n for e in want]
    assert {e.contract_id for e in events} == {CONTRACT}
    # one request scans at most 10,000 ledgers
    window = ledger.latest_ledger - ledger.oldest_ledger + 1
    assert ledger.request_counts["getEvents"] >= math.ceil(window / 10_000)


def test_events_with_a_page_limit_larger_than_the_result(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """A page limit above the event count (pages never fill) still walks the whole window."""
    seeded = seed_events(ledger)
    reader = ChainReader(devnet.url, FAST)
    try:
        events, _ = reader.get_events(contract_ids=[CONTRACT, OTHER_CONTRACT], page_limit=10_000)
    finally:
        reader.close()
    assert [e.id for e in events] == [e.id for e in seeded]


def test_topic_filter_restricts_events(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """`topics` keeps only events whose topic matches (here: first segment `deposit`)."""
    seeded = seed_events(ledger)
    want = [e.id for e in seeded if e.contract_id == CONTRACT and e.kind == "deposit"]
    reader = ChainReader(devnet.url, FAST)
    try:
        events, _ = reader.get_events(
            contract_ids=[CONTRACT], topics=[[scval_topic(scval.to_symbol("deposit")), "*"]], page_limit=5
        )
    finally:
        reader.close()
    assert want and len(want) < len([e for e in seeded if e.contract_id == CONTRACT])
    assert [e.id for e in events] == want


def test_start_below_retention_raises_naming_the_oldest_ledger(
    ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    """A start ledger the RPC no longer holds is a RetentionWindowError naming the oldest ledger."""
    oldest = ledger.oldest_ledger
    reader = ChainReader(devnet.url, FAST)
    try:
        with pytest.raises(RetentionWindowError, match=str(oldest)):
            reader.get_events(contract_ids=[CONTRACT], start_ledger=oldest - 1)
    finally:
        reader.close()


def test_end_ledger_excludes_events_at_and_after_it(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """[start_ledger, end_ledger): events on end_ledger and later are left out, even
    when the range spans several 10,000-ledger scans and several pages."""
    seeded = seed_events(ledger)
    start, end = ledger.oldest_ledger + 5, 1_950_000  # the 25-event burst sits on `end`
    for seq in (start, end - 1, end):
        ledger.add_event(contract_id=CONTRACT, topic=_topic("edge", seq), value=scval.to_int128(0), ledger=seq)
    reader = ChainReader(devnet.url, FAST)
    try:
        events, _ = reader.get_events(contract_ids=[CONTRACT], start_ledger=start, end_ledger=end, page_limit=4)
    finally:
        reader.close()
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {e.ledger for e in events} >= {start, end - 1}
    assert all(start <= e.ledger < end for e in events)
    want = {e.id for e in seeded if e.contract_id == CONTRACT and start <= e.ledger < end}
    assert want <= set(ids)
    assert len(ids) == len(want) + 2  # plus the edge events on start and end - 1


def test_events_after_closing_ledgers_are_seen(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """Events added on freshly closed ledgers are returned; the window follows the latest ledger."""
    first = ledger.latest_ledger
    ledger.close_ledger(15_000)
    new_latest = ledger.latest_ledger
    ids = [
        ledger.add_event(contract_id=CONTRACT, topic=_topic("late", i), value=scval.to_int128(i), ledger=seq)
        for i, seq in enumerate((first, first + 7_500, new_latest))
    ]
    reader = ChainReader(devnet.url, FAST)
    try:
        events, latest = reader.get_events(contract_ids=[CONTRACT], start_ledger=first, page_limit=2)
    finally:
        reader.close()
    assert latest == new_latest
    assert [e.id for e in events] == ids
