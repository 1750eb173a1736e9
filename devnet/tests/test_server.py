"""The devnet, exercised over HTTP through the unmodified `stellar_sdk.SorobanServer`.

The pipeline's chain readers only ever see the devnet through the SDK, so these
tests go through the same path: a real socket, the SDK's request models and
its response parsing. Raw `requests` posts are used only where the SDK cannot
express the request (malformed bodies, forbidden parameter combinations) or
where the wire type itself is the point.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stellar_sdk import Address, Keypair, SorobanServer, StrKey, scval, xdr
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.exceptions import SorobanRpcErrorResponse
from stellar_sdk.soroban_rpc import EventFilter, EventFilterType

from soroban_devnet.ledger import (
    DEFAULT_PERSISTENT_TTL,
    LEDGER_SCAN_LIMIT,
    STANDALONE_PASSPHRASE,
    DevnetLedger,
    FaultConfig,
    parse_event_id,
)
from soroban_devnet.server import DevnetServer, encode_response

START = 2_000_000
T0 = 1_700_000_000.0
STREAM = StrKey.encode_contract(bytes([1] * 32))
LENDING = StrKey.encode_contract(bytes([2] * 32))
SENDER = Keypair.from_raw_ed25519_seed(bytes([3] * 32)).public_key
RECIPIENT = Keypair.from_raw_ed25519_seed(bytes([4] * 32)).public_key
TOKEN = StrKey.encode_contract(bytes([5] * 32))


class FakeClock:
    """A settable clock, so ledger closes happen exactly when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def manual_ledger(**kwargs: Any) -> DevnetLedger:
    """A ledger whose latest ledger moves only through close_ledger."""
    return DevnetLedger(ledger_close_seconds=math.inf, clock=FakeClock(), **kwargs)


@contextmanager
def serve(ledger: DevnetLedger) -> Iterator[tuple[DevnetServer, SorobanServer]]:
    with DevnetServer(ledger) as devnet, SorobanServer(devnet.url, client=RequestsClient(num_retries=0)) as rpc:
        yield devnet, rpc


@pytest.fixture
def ledger() -> DevnetLedger:
    return manual_ledger()


@pytest.fixture
def devnet(ledger: DevnetLedger) -> Iterator[DevnetServer]:
    with DevnetServer(ledger) as server:
        yield server


@pytest.fixture
def rpc(devnet: DevnetServer) -> Iterator[SorobanServer]:
    with SorobanServer(devnet.url, client=RequestsClient(num_retries=0)) as server:
        yield server


def raw_call(url: str, method: str, params: Any = None, request_id: Any = 7) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    response = requests.post(url, json=body, timeout=5)
    assert response.status_code == 200
    return response.json()


def stream_key(stream_id: int) -> xdr.LedgerKey:
    return xdr.LedgerKey(
        xdr.LedgerEntryType.CONTRACT_DATA,
        contract_data=xdr.LedgerKeyContractData(
            contract=Address(STREAM).to_xdr_sc_address(),
            key=scval.to_enum("Stream", scval.to_uint64(stream_id)),
            durability=xdr.ContractDataDurability.PERSISTENT,
        ),
    )


def stream_value(total: int, released: int) -> xdr.SCVal:
    return scval.to_struct(
        {
            "sender": scval.to_address(SENDER),
            "recipient": scval.to_address(RECIPIENT),
            "token": scval.to_address(TOKEN),
            "total": scval.to_int128(total),
            "released": scval.to_int128(released),
            "status": scval.to_enum("Active", None),
        }
    )


def stream_entry(stream_id: int, total: int, released: int) -> xdr.LedgerEntryData:
    return xdr.LedgerEntryData(
        xdr.LedgerEntryType.CONTRACT_DATA,
        contract_data=xdr.ContractDataEntry(
            ext=xdr.ExtensionPoint(0),
            contract=Address(STREAM).to_xdr_sc_address(),
            key=scval.to_enum("Stream", scval.to_uint64(stream_id)),
            durability=xdr.ContractDataDurability.PERSISTENT,
            val=stream_value(total, released),
        ),
    )


def cursor_ledger(cursor: str) -> int:
    return parse_event_id(cursor)[0] >> 32


# -- network info -------------------------------------------------------------


def test_health_network_and_latest_ledger_parse(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.close_ledger(4)

    health = rpc.get_health()
    network = rpc.get_network()
    latest = rpc.get_latest_ledger()

    assert (health.status, health.latest_ledger, health.ledger_retention_window) == ("healthy", START + 4, 120_960)
    assert health.oldest_ledger == START + 4 - 120_960 + 1
    assert (network.passphrase, network.protocol_version) == (STANDALONE_PASSPHRASE, 23)
    assert latest.sequence == START + 4
    assert latest.close_time == int(T0) + 4 * 5
    assert len(latest.id) == 64 and int(latest.id, 16) >= 0
    header = xdr.LedgerHeader.from_xdr(latest.header_xdr)
    assert (header.ledger_seq.uint32, header.scp_value.close_time.time_point.uint64) == (START + 4, latest.close_time)
    meta = xdr.LedgerCloseMeta.from_xdr(latest.metadata_xdr)
    assert meta.v2 is not None and meta.v2.ledger_header.hash.hash.hex() == latest.id
    assert hashlib.sha256(header.to_xdr_bytes()).hexdigest() == latest.id


def test_int64_fields_are_json_strings_and_ledgers_numbers(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    latest = raw_call(devnet.url, "getLatestLedger")["result"]
    events = raw_call(devnet.url, "getEvents", {"startLedger": START})["result"]

    assert latest["closeTime"] == str(int(T0)) and latest["sequence"] == START
    assert isinstance(events["latestLedgerCloseTime"], str) and isinstance(events["oldestLedgerCloseTime"], str)
    assert isinstance(events["latestLedger"], int) and isinstance(events["oldestLedger"], int)


def test_responses_encode_as_json_would_even_where_orjson_refuses() -> None:
    """Beyond 64 bits orjson refuses an integer: the response still goes out, exact, through json."""
    plain = {"jsonrpc": "2.0", "id": 3, "result": {"entries": [{"key": "AAAABg==", "xdr": "é"}], "latestLedger": 9}}
    wide = {"jsonrpc": "2.0", "id": 4, "result": {"value": 2**64 + 1}}
    assert json.loads(encode_response(plain)) == plain
    assert encode_response(wide) == json.dumps(wide, separators=(",", ":")).encode()
    assert json.loads(encode_response(wide))["result"]["value"] == 2**64 + 1


# -- ledger entries -----------------------------------------------------------


def test_stream_entry_round_trips_and_missing_keys_are_absent(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.put_entry(stream_key(7), stream_entry(7, 1_000, 250), last_modified=START - 3, live_until=START + 500)
    ledger.put_entry(stream_key(8), stream_entry(8, 5, 0))

    response = rpc.get_ledger_entries([stream_key(99), stream_key(7), stream_key(8)])

    assert response.latest_ledger == START
    assert response.entries is not None
    assert [e.key for e in response.entries] == [stream_key(7).to_xdr(), stream_key(8).to_xdr()]
    first, second = response.entries
    assert (first.last_modified_ledger, first.live_until_ledger) == (START - 3, START + 500)
    # A new persistent entry gets the devnet's default TTL, as every contract-data entry has one.
    assert (second.last_modified_ledger, second.live_until_ledger) == (START, START + DEFAULT_PERSISTENT_TTL)
    data = xdr.LedgerEntryData.from_xdr(first.xdr)
    assert data == stream_entry(7, 1_000, 250)
    assert data.contract_data is not None
    fields = scval.from_struct(data.contract_data.val)
    assert (scval.from_int128(fields["total"]), scval.from_int128(fields["released"])) == (1_000, 250)
    assert scval.from_enum(fields["status"]) == ("Active", None)


def test_raw_entries_are_served_unchanged(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.put_raw_entry(stream_key(1).to_xdr(), "bm90IGFuIGVudHJ5", last_modified=START - 1)

    response = rpc.get_ledger_entries([stream_key(1)])

    assert response.entries is not None
    assert [(e.xdr, e.last_modified_ledger) for e in response.entries] == [("bm90IGFuIGVudHJ5", START - 1)]
    assert ledger.remove_entry(stream_key(1).to_xdr()) and ledger.entry_count == 0
    assert rpc.get_ledger_entries([stream_key(1)]).entries == []


def test_200_keys_are_served_and_201_are_rejected(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    keys = [stream_key(i) for i in range(201)]
    for i in range(0, 200, 4):
        ledger.put_entry(keys[i], stream_entry(i, i, 0))

    response = rpc.get_ledger_entries(keys[:200])
    with pytest.raises(SorobanRpcErrorResponse) as rejected:
        rpc.get_ledger_entries(keys)

    assert response.entries is not None
    assert [e.key for e in response.entries] == [keys[i].to_xdr() for i in range(0, 200, 4)]
    assert rejected.value.code == -32602
    assert rejected.value.message == "key count (201) exceeds maximum supported (200)"


@pytest.mark.parametrize("bad_key", ["not base64!", "AAAA", 12])
def test_undecodable_key_is_invalid_params(devnet: DevnetServer, bad_key: Any) -> None:
    response = raw_call(devnet.url, "getLedgerEntries", {"keys": [stream_key(1).to_xdr(), bad_key]})

    assert response["error"]["code"] == -32602
    assert "index 1" in response["error"]["message"]


def test_ttl_keys_cannot_be_queried(rpc: SorobanServer) -> None:
    ttl_key = xdr.LedgerKey(xdr.LedgerEntryType.TTL, ttl=xdr.LedgerKeyTtl(key_hash=xdr.Hash(bytes(32))))

    with pytest.raises(SorobanRpcErrorResponse) as rejected:
        rpc.get_ledger_entries([stream_key(1), ttl_key])

    assert (rejected.value.code, rejected.value.message) == (-32602, "ledger ttl entries cannot be queried directly")


# -- JSON-RPC envelope ----------------------------------------------------------


def test_envelope_errors(devnet: DevnetServer) -> None:
    malformed = requests.post(devnet.url, data=b"{not json", timeout=5).json()
    unknown = raw_call(devnet.url, "getFeeStats", request_id="abc")
    bad_params = raw_call(devnet.url, "getLedgerEntries", {"keyz": []})
    ok = raw_call(devnet.url, "getHealth", request_id=42)

    assert malformed["error"]["code"] == -32700
    assert unknown == {"jsonrpc": "2.0", "id": "abc", "error": {"code": -32601, "message": "method not found"}}
    assert bad_params["error"]["code"] == -32602
    assert ok["id"] == 42 and ok["result"]["status"] == "healthy"


def test_request_counts_and_bytes_sent(ledger: DevnetLedger, devnet: DevnetServer, rpc: SorobanServer) -> None:
    rpc.get_health()
    ledger.reset_counters()

    rpc.get_health()
    rpc.get_health()
    rpc.get_network()
    with pytest.raises(SorobanRpcErrorResponse):
        rpc.get_ledger_entries([stream_key(i) for i in range(201)])
    counted_bytes = ledger.bytes_sent
    raw = requests.post(devnet.url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}, timeout=5)

    assert ledger.request_counts == {"getHealth": 3, "getNetwork": 1, "getLedgerEntries": 1}
    assert ledger.bytes_sent - counted_bytes == len(raw.content) == int(raw.headers["Content-Length"])


# -- faults ---------------------------------------------------------------------


def test_latency_is_added_to_targeted_methods(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.faults = FaultConfig(latency_s=0.3, methods=frozenset({"getHealth"}))

    began = time.perf_counter()
    rpc.get_health()

    assert time.perf_counter() - began >= 0.3


def test_the_devnets_own_work_happens_within_the_latency(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    """Latency is the time to the answer, a provider's own work included: a handler that takes
    0.4 s at 0.5 s of latency answers after about 0.5 s, not 0.9 s (and never before 0.5 s)."""
    def slow(_params: Any) -> dict[str, Any]:
        time.sleep(0.4)
        return {"status": "slow"}

    ledger.register_method("slowMethod", slow)
    ledger.faults = FaultConfig(latency_s=0.5, methods=frozenset({"slowMethod"}))

    began = time.perf_counter()
    answer = requests.post(devnet.url, json={"jsonrpc": "2.0", "id": 1, "method": "slowMethod"}, timeout=5)
    took = time.perf_counter() - began

    assert answer.json()["result"] == {"status": "slow"}
    assert 0.5 <= took < 0.8


def test_failure_rate_one_fails_everything_and_zero_nothing(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.faults = FaultConfig(failure_rate=1.0)
    failures = []
    for call in [rpc.get_health, rpc.get_network, rpc.get_latest_ledger] * 5:
        with pytest.raises(SorobanRpcErrorResponse) as failed:
            call()
        failures.append((failed.value.code, failed.value.message))

    ledger.faults = FaultConfig(failure_rate=0.0)
    for call in [rpc.get_health, rpc.get_network, rpc.get_latest_ledger] * 5:
        call()

    assert set(failures) == {(-32603, "devnet: injected failure")}
    assert ledger.request_counts["getHealth"] == 10


def test_failures_target_only_configured_methods(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.faults = FaultConfig(failure_rate=1.0, methods=frozenset({"getNetwork"}))

    assert rpc.get_health().status == "healthy"
    with pytest.raises(SorobanRpcErrorResponse):
        rpc.get_network()


def outcomes(rpc: SorobanServer, n: int) -> list[bool]:
    results = []
    for _ in range(n):
        try:
            rpc.get_health()
            results.append(True)
        except SorobanRpcErrorResponse:
            results.append(False)
    return results


def test_failure_draw_replays_for_the_same_seed(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.faults = FaultConfig(failure_rate=0.5, failure_seed=11)
    first = outcomes(rpc, 40)
    ledger.faults = FaultConfig(failure_rate=0.5, failure_seed=11)
    replay = outcomes(rpc, 40)
    ledger.faults = FaultConfig(failure_rate=0.5, failure_seed=12)
    other_seed = outcomes(rpc, 40)

    assert first == replay
    assert 0 < first.count(False) < 40
    assert other_seed != first


def test_which_request_fails_does_not_depend_on_arrival_order(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    # Concurrent readers send their batches in a different order each run.
    batches = [[stream_key(i), stream_key(i + 100)] for i in range(20)]

    def fails(batch: list[xdr.LedgerKey]) -> bool:
        try:
            rpc.get_ledger_entries(batch)
            return False
        except SorobanRpcErrorResponse:
            return True

    ledger.faults = FaultConfig(failure_rate=0.5, failure_seed=3)
    in_order = [fails(batch) for batch in batches]
    ledger.faults = FaultConfig(failure_rate=0.5, failure_seed=3)
    reversed_order = [fails(batch) for batch in reversed(batches)][::-1]

    assert in_order == reversed_order
    assert 0 < sum(in_order) < len(batches)


def test_poison_key_fails_only_batches_containing_it(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    for i in range(3):
        ledger.put_entry(stream_key(i), stream_entry(i, 10, 0))
    ledger.faults = FaultConfig(poison_keys=frozenset({stream_key(1).to_xdr()}))

    clean = rpc.get_ledger_entries([stream_key(0), stream_key(2)])
    with pytest.raises(SorobanRpcErrorResponse) as poisoned:
        rpc.get_ledger_entries([stream_key(0), stream_key(1)])

    assert clean.entries is not None and len(clean.entries) == 2
    assert poisoned.value.code == -32603


# -- events ---------------------------------------------------------------------


def sym(name: str) -> xdr.SCVal:
    return scval.to_symbol(name)


def test_event_fields(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.close_ledger(3)
    event_id = ledger.add_event(
        contract_id=STREAM,
        topic=[sym("stream_created"), scval.to_uint64(9)],
        value=scval.to_int128(500),
        ledger=START + 2,
        tx_index=3,
        op_index=1,
    )

    (event,) = rpc.get_events(start_ledger=START).events

    assert event_id == event.id == "%019d-%010d" % (((START + 2) << 32) | (3 << 12) | 1, 0)
    assert (event.event_type, event.ledger, event.contract_id) == ("contract", START + 2, STREAM)
    assert (event.transaction_index, event.operation_index) == (3, 1)
    assert event.ledger_close_at == datetime.fromtimestamp(int(T0) + 10, UTC)
    assert len(event.transaction_hash) == 64 and int(event.transaction_hash, 16) >= 0
    assert [xdr.SCVal.from_xdr(t) for t in event.topic] == [sym("stream_created"), scval.to_uint64(9)]
    assert scval.from_int128(event.value) == 500


def test_events_in_one_op_get_increasing_indexes(ledger: DevnetLedger) -> None:
    ids = [ledger.add_event(contract_id=STREAM, topic=[sym("a")], value=scval.to_void()) for _ in range(3)]

    assert [parse_event_id(i)[1] for i in ids] == [0, 1, 2]
    assert ledger.event_count == 3


def test_event_filters(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.close_ledger(1)
    one = scval.to_uint64(1)
    borrower = scval.to_address(SENDER)
    ledger.add_event(contract_id=STREAM, topic=[sym("stream_created"), one], value=scval.to_int128(5))
    ledger.add_event(contract_id=STREAM, topic=[sym("stream_released"), one], value=scval.to_int128(2))
    ledger.add_event(contract_id=LENDING, topic=[sym("loan_created"), one, borrower], value=scval.to_int128(9))
    ledger.add_event(contract_id=LENDING, topic=[sym("loan_repaid"), one], value=scval.to_int128(9))
    ledger.add_event(contract_id=LENDING, topic=[sym("deposit")], value=scval.to_int128(1))

    def names(*filters: EventFilter) -> list[str]:
        events = rpc.get_events(start_ledger=START, filters=list(filters)).events
        return [scval.from_symbol(e.topic[0]) for e in events]

    def topic_filter(*segments: str, contracts: tuple[str, ...] = ()) -> EventFilter:
        return EventFilter(
            event_type=EventFilterType.CONTRACT, contract_ids=list(contracts) or None, topics=[list(segments)]
        )

    every = ["stream_created", "stream_released", "loan_created", "loan_repaid", "deposit"]
    assert names() == every
    assert names(EventFilter(contract_ids=[LENDING])) == ["loan_created", "loan_repaid", "deposit"]
    assert names(EventFilter(event_type=EventFilterType.SYSTEM)) == []
    assert names(topic_filter(sym("stream_created").to_xdr(), "*")) == ["stream_created"]
    assert names(topic_filter("*", one.to_xdr())) == ["stream_created", "stream_released", "loan_repaid"]
    assert names(topic_filter("*", "**")) == every
    assert names(topic_filter("*", "*", "**")) == ["stream_created", "stream_released", "loan_created", "loan_repaid"]
    assert names(topic_filter("*", one.to_xdr(), "**", contracts=(LENDING,))) == ["loan_created", "loan_repaid"]
    assert names(topic_filter(sym("loan_created").to_xdr())) == []
    assert names(topic_filter(sym("loan_created").to_xdr(), "**")) == ["loan_created"]
    assert names(topic_filter("*"), EventFilter(contract_ids=[STREAM])) == [
        "stream_created",
        "stream_released",
        "deposit",
    ]


@pytest.mark.parametrize(
    ("filters", "limit"),
    [
        ([EventFilter()] * 6, None),
        ([EventFilter(contract_ids=[STREAM] * 6)], None),
        ([EventFilter(topics=[["*"]] * 6)], None),
        ([EventFilter(topics=[["*"] * 5])], None),
        ([EventFilter(topics=[["**"]])], None),
        ([EventFilter(topics=[["**", "*"]])], None),
        ([EventFilter(topics=[["not-an-scval"]])], None),
        ([EventFilter(contract_ids=[SENDER])], None),
        ([], 10_001),
    ],
)
def test_invalid_event_requests_are_invalid_params(
    rpc: SorobanServer, filters: list[EventFilter], limit: int | None
) -> None:
    with pytest.raises(SorobanRpcErrorResponse) as rejected:
        rpc.get_events(start_ledger=START, filters=filters, limit=limit)

    assert rejected.value.code == -32602


def test_cursor_cannot_be_combined_with_a_ledger_range(devnet: DevnetServer) -> None:
    cursor = "%019d-%010d" % (START << 32, 0)
    both = raw_call(devnet.url, "getEvents", {"startLedger": START, "pagination": {"cursor": cursor}})
    cursor_only = raw_call(devnet.url, "getEvents", {"endLedger": None, "pagination": {"cursor": cursor}})
    neither = raw_call(devnet.url, "getEvents", {"filters": []})

    assert both["error"]["code"] == -32602
    assert "result" in cursor_only
    assert neither["error"]["code"] == -32602


def test_start_ledger_outside_retention_names_the_range() -> None:
    ledger = manual_ledger(retention_window=1_000)
    ledger.close_ledger(5_000)
    oldest, latest = START + 4_001, START + 5_000
    with serve(ledger) as (_, client):
        assert client.get_events(start_ledger=oldest).oldest_ledger == oldest
        for start in (oldest - 1, latest + 1):
            with pytest.raises(SorobanRpcErrorResponse) as rejected:
                client.get_events(start_ledger=start)
            assert rejected.value.code == -32600
            assert f"oldest ledger: {oldest}" in rejected.value.message
            assert f"latest ledger: {latest}" in rejected.value.message


def test_one_request_scans_at_most_10000_ledgers(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.close_ledger(25_000)
    ids = [
        ledger.add_event(contract_id=STREAM, topic=[sym("x")], value=scval.to_void(), ledger=START + offset)
        for offset in (0, 10_500, 20_500)
    ]

    first = rpc.get_events(start_ledger=START)
    second = rpc.get_events(cursor=first.cursor)
    third = rpc.get_events(cursor=second.cursor)

    assert [e.id for e in first.events] == ids[:1]
    assert cursor_ledger(first.cursor) == START + LEDGER_SCAN_LIMIT - 1
    assert [e.id for e in second.events] == ids[1:2]
    assert [e.id for e in third.events] == ids[2:]
    assert cursor_ledger(third.cursor) == START + 25_000


def test_end_ledger_is_exclusive(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.close_ledger(20)
    inside = ledger.add_event(contract_id=STREAM, topic=[sym("x")], value=scval.to_void(), ledger=START + 9)
    ledger.add_event(contract_id=STREAM, topic=[sym("x")], value=scval.to_void(), ledger=START + 10)

    response = rpc.get_events(start_ledger=START, end_ledger=START + 10)

    assert [e.id for e in response.events] == [inside]
    assert cursor_ledger(response.cursor) == START + 9


def test_full_page_cursor_is_the_last_event(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ids = [ledger.add_event(contract_id=STREAM, topic=[sym("x")], value=scval.to_void()) for _ in range(3)]

    page = rpc.get_events(start_ledger=START, limit=2)
    rest = rpc.get_events(cursor=page.cursor, limit=2)

    assert page.cursor == ids[1]
    assert [e.id for e in page.events + rest.events] == ids


def page_all(rpc: SorobanServer, start: int, latest: int, limit: int, filters: list[EventFilter]) -> list[str]:
    """Read every event from `start` the way a reader would: startLedger once, then cursors."""
    response = rpc.get_events(start_ledger=start, filters=filters, limit=limit)
    seen = [e.id for e in response.events]
    for _ in range(1_000):
        if len(response.events) < limit and cursor_ledger(response.cursor) >= latest:
            return seen
        response = rpc.get_events(cursor=response.cursor, filters=filters, limit=limit)
        seen.extend(e.id for e in response.events)
    raise AssertionError("paging did not reach the latest ledger")


SPAN = 25_000
placements = st.lists(
    st.tuples(
        st.one_of(st.integers(0, SPAN), st.sampled_from([0, 9_998, 9_999, 10_000, 19_997, 19_998, SPAN])),
        st.integers(0, 2),
        st.integers(0, 2),
        st.booleans(),
    ),
    max_size=30,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements=placements, limit=st.integers(1, 7))
def test_paging_never_skips_or_repeats(placements: list[tuple[int, int, int, bool]], limit: int) -> None:
    ledger = manual_ledger()
    ledger.close_ledger(SPAN)
    wanted = []
    for offset, tx_index, op_index, is_stream in placements:
        event_id = ledger.add_event(
            contract_id=STREAM if is_stream else LENDING,
            topic=[sym("x")],
            value=scval.to_void(),
            ledger=START + offset,
            tx_index=tx_index,
            op_index=op_index,
        )
        if is_stream:
            wanted.append(event_id)

    with serve(ledger) as (_, rpc):
        seen = page_all(rpc, START, START + SPAN, limit, [EventFilter(contract_ids=[STREAM])])

    assert seen == sorted(wanted)


# -- ledger clock -------------------------------------------------------------


def test_clock_closes_ledgers() -> None:
    clock = FakeClock()
    ledger = DevnetLedger(clock=clock, ledger_close_seconds=5)
    with serve(ledger) as (_, rpc):
        assert rpc.get_latest_ledger().sequence == START
        clock.now += 4.9
        assert rpc.get_health().latest_ledger == START
        clock.now += 0.1
        assert rpc.get_health().latest_ledger == START + 1
        clock.now += 50
        latest = rpc.get_latest_ledger()
        clock.now -= 30
        after_clock_went_back = rpc.get_health().latest_ledger

    assert (latest.sequence, latest.close_time) == (START + 11, int(T0) + 55)
    assert after_clock_went_back == START + 11
    assert ledger.close_ledger(2) == START + 13


def test_close_ledger_by_hand(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    assert ledger.close_ledger() == START + 1
    assert ledger.close_ledger(3) == START + 4
    latest = rpc.get_latest_ledger()

    assert (latest.sequence, latest.close_time) == (START + 4, int(T0) + 20)
    assert rpc.get_health().latest_ledger == START + 4


def test_zero_close_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="math.inf"):
        DevnetLedger(ledger_close_seconds=0)
