"""Ledger-metadata replay over HTTP against the devnet: the same events getEvents serves, the
contract-data changes with their state before, problems in the history as problems, and the
choice between getEvents and getLedgers by window."""

from __future__ import annotations

import math
import time

import pytest
from stellar_sdk import StrKey, scval

from reconciliation_pipeline.chain.ledgermeta import Watch, parse_ledger
from reconciliation_pipeline.chain.reader import ChainReader, ReaderSettings, RetentionWindowError
from reconciliation_pipeline.chain.replay import (
    BROKEN_CHAIN,
    EVENTS_SOURCE,
    MISSING,
    PARALLEL_FROM_LEDGERS,
    REPLAY_SOURCE,
    UNDECODABLE,
    read_events,
    replay,
)
from soroban_devnet.entries import contract_data_entry, contract_data_key, enum_key
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

WATCHED = StrKey.encode_contract(bytes([4] * 32))
OTHER = StrKey.encode_contract(bytes([5] * 32))


def _reader(url: str, **settings: float) -> ChainReader:
    return ChainReader(url, ReaderSettings(backoff_initial_s=0.01, max_attempts=2), **settings)


def _seed_events(ledger: DevnetLedger, first: int, count: int) -> None:
    """Events of both contracts spread over many transactions and operations of many ledgers."""
    for i in range(count):
        seq = first + (i * 37) % 400
        for contract in (WATCHED, OTHER):
            ledger.add_event(contract_id=contract, topic=[scval.to_symbol("moved"), scval.to_uint64(i)],
                             value=scval.to_int128(i), ledger=seq, tx_hash=f"{contract == WATCHED:d}{i:063x}",
                             op_index=i % 3)


def test_a_replay_yields_exactly_the_events_getevents_serves(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    first = ledger.latest_ledger - PARALLEL_FROM_LEDGERS - 50  # long enough to parse in worker processes
    _seed_events(ledger, first, 120)
    reader = _reader(devnet.url)
    try:
        replayed = replay(reader, first, ledger.latest_ledger + 1, Watch(contracts=frozenset({WATCHED})))
        served, _ = reader.get_events(contract_ids=[WATCHED], start_ledger=first)
    finally:
        reader.close()
    key = ("id", "ledger", "transaction_hash", "topic", "value", "operation_index", "transaction_index", "contract_id")
    assert [tuple(getattr(e, k) for k in key) for e in replayed.events] == [
        tuple(getattr(e, k) for k in key) for e in served]
    assert len(served) == 120 and replayed.problems == [] and replayed.complete
    assert replayed.ledgers == ledger.latest_ledger + 1 - first
    assert replayed.decoded == 120 and replayed.transactions == 240  # the other contract's are skipped


def test_contract_data_changes_come_with_their_state_before(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    key = enum_key("Loan", scval.to_uint64(3))
    ledger_key = contract_data_key(WATCHED, key).to_xdr()
    start = ledger.latest_ledger
    with ledger.transaction(tx_hash="01" * 32):
        ledger.put_raw_entry(ledger_key, contract_data_entry(WATCHED, key, scval.to_int128(10)).to_xdr())
    ledger.close_ledger()
    with ledger.transaction(tx_hash="02" * 32):
        ledger.put_raw_entry(ledger_key, contract_data_entry(WATCHED, key, scval.to_int128(11)).to_xdr())
    ledger.close_ledger()
    ledger.remove_entry(ledger_key)
    ledger.put_raw_entry(contract_data_key(OTHER, key).to_xdr(), contract_data_entry(OTHER, key, scval.to_void()).to_xdr())
    reader = _reader(devnet.url)
    try:
        replayed = replay(reader, start, ledger.latest_ledger + 1, Watch(contracts=frozenset({WATCHED})))
    finally:
        reader.close()
    changes = [(c.ledger, c.change.change, c.change.tx_hash, c.change.before is not None, c.change.entry is not None)
               for c in replayed.changes]
    removed_by = ledger.transactions_in(start + 2)[0].tx_hash
    assert changes == [(start, "created", "01" * 32, False, True), (start + 1, "updated", "02" * 32, True, True),
                       (start + 2, "removed", removed_by, True, False)]


@pytest.mark.parametrize("span", [40, PARALLEL_FROM_LEDGERS + 100])  # parsed here, and in worker processes
@pytest.mark.parametrize(("fault", "kind"), [("broken_ledgers", BROKEN_CHAIN), ("missing_ledgers", MISSING),
                                             ("garbled_ledgers", UNDECODABLE)])
def test_a_broken_chain_a_gap_or_garbled_metadata_is_a_problem(ledger: DevnetLedger, devnet: DevnetServer,
                                                              fault: str, kind: str, span: int) -> None:
    top = ledger.latest_ledger
    ledger.faults = FaultConfig(**{fault: frozenset({top - 20})})
    reader = _reader(devnet.url)
    try:
        replayed = replay(reader, top - span, top + 1, Watch(contracts=frozenset({WATCHED})))
    finally:
        reader.close()
    assert {p.kind for p in replayed.problems} == {kind}
    assert replayed.problems[0].ledger == top - 20
    clean = [p for p in replayed.problems if p.ledger not in (top - 20, top - 19)]
    assert clean == []


def test_the_first_ledger_is_checked_against_the_one_before(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    top = ledger.latest_ledger
    ledger.faults = FaultConfig(broken_ledgers=frozenset({top - 10}))
    reader = _reader(devnet.url)
    try:
        replayed = replay(reader, top - 10, top - 9, Watch())
    finally:
        reader.close()
    assert [(p.ledger, p.kind) for p in replayed.problems] == [(top - 10, BROKEN_CHAIN)]


def test_a_replay_stops_at_the_deadline_and_says_so(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    reader = _reader(devnet.url, deadline=time.monotonic() - 1)
    try:
        replayed = replay(reader, ledger.latest_ledger - 100, ledger.latest_ledger + 1, Watch())
    finally:
        reader.close()
    assert not replayed.complete and replayed.ledgers == 0


@pytest.fixture
def short_events() -> DevnetLedger:
    """Events kept for 1,000 ledgers, ledgers served for 10,000."""
    return DevnetLedger(ledger_close_seconds=math.inf, retention_window=1_000, ledger_retention_window=10_000)


def test_events_come_from_the_window_that_serves_them(short_events: DevnetLedger) -> None:
    top = short_events.latest_ledger
    for offset in (5_000, 3_000, 900, 10):
        short_events.add_event(contract_id=WATCHED, topic=[scval.to_symbol("moved"), scval.to_uint64(offset)],
                               value=scval.to_int128(offset), ledger=top - offset)
    with DevnetServer(short_events) as devnet:
        reader = _reader(devnet.url)
        try:
            recent = read_events(reader, contract_ids=[WATCHED], topics=None, start_ledger=top - 950, end_ledger=None,
                                 max_replay_ledgers=100_000)
            old = read_events(reader, contract_ids=[WATCHED], topics=None, start_ledger=top - 6_000,
                              end_ledger=top - 2_000, max_replay_ledgers=100_000)
            both = read_events(reader, contract_ids=[WATCHED], topics=None, start_ledger=top - 6_000,
                               end_ledger=None, max_replay_ledgers=100_000)
            with pytest.raises(RetentionWindowError, match=r"outside both retention windows: getEvents serves ledgers from "
                               rf"{top - 999} and getLedgers does not serve ledger {top - 20_000}: the oldest ledger "
                               rf"it serves is {top - 9_999}"):
                read_events(reader, contract_ids=[WATCHED], topics=None, start_ledger=top - 20_000, end_ledger=None,
                            max_replay_ledgers=100_000)
            with pytest.raises(RetentionWindowError, match="REPLAY_MAX_LEDGERS"):
                read_events(reader, contract_ids=[WATCHED], topics=None, start_ledger=top - 6_000, end_ledger=None,
                            max_replay_ledgers=1_000)
        finally:
            reader.close()

    def offsets(window: object) -> list[int]:
        return [top - e.ledger for e in window.events]  # type: ignore[attr-defined]

    assert (recent.source, offsets(recent)) == (EVENTS_SOURCE, [900, 10])
    assert (old.source, offsets(old)) == (REPLAY_SOURCE, [5_000, 3_000])
    assert (both.source, offsets(both)) == (f"{REPLAY_SOURCE}+{EVENTS_SOURCE}", [5_000, 3_000, 900, 10])


def test_an_eviction_and_a_restore_are_in_the_metadata(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """An entry whose TTL ran out is listed in evictedKeys of the ledger that archived it; restoring
    it is a `restored` change of the watched contract."""
    key = enum_key("Loan", scval.to_uint64(9))
    ledger_key = contract_data_key(WATCHED, key).to_xdr()
    start = ledger.latest_ledger
    ledger.put_raw_entry(ledger_key, contract_data_entry(WATCHED, key, scval.to_int128(1)).to_xdr(),
                         live_until=start + 2)
    ledger.close_ledger(2 + ledger.eviction_delay + 1)
    evicted_in = start + 2 + ledger.eviction_delay + 1
    meta = parse_ledger(ledger.ledger_close_meta(evicted_in), Watch(contracts=frozenset({WATCHED})))
    assert meta.evicted[0] == ledger_key and len(meta.evicted) == 2  # the entry and its TTL
    ledger.close_ledger()
    ledger.extend_ttl(ledger_key, ledger.latest_ledger + 100)
    reader = _reader(devnet.url)
    try:
        replayed = replay(reader, ledger.latest_ledger, ledger.latest_ledger + 1, Watch(contracts=frozenset({WATCHED})))
    finally:
        reader.close()
    assert [(c.change.change, c.change.key) for c in replayed.changes] == [("restored", ledger_key)]
