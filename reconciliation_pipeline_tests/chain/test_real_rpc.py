"""How a real RPC differs from an emulator, and the reader living with it.

A lagging node answers getHealth with -32603 and still serves reads; a provider's event page
limit can be below ours (-32602 naming it); a response can be huge or belong to another
request; getLedgers answers with whole ledgers, so day-to-ledger searches must be short.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from stellar_sdk import SorobanServer, scval
from stellar_sdk.exceptions import SorobanRpcErrorResponse

from recon_demo.identities import contract_id
from reconciliation_pipeline.chain.history import ledger_window
from reconciliation_pipeline.chain.ledgermeta import Watch
from reconciliation_pipeline.chain.reader import ChainReader, ReaderSettings, RpcReadError
from reconciliation_pipeline.chain.replay import replay
from reconciliation_pipeline.chain.rpc_client import ResponseIdMismatchError
from reconciliation_pipeline.core.latency import ledger_close_times
from reconciliation_pipeline_tests.chain.test_reader import entry_key, seed_entries
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

CONTRACT = contract_id("reader-test")
FAST = ReaderSettings(backoff_initial_s=0.001)


def _seed_events(ledger: DevnetLedger, n: int) -> None:
    for i in range(n):
        ledger.add_event(contract_id=CONTRACT, topic=[scval.to_symbol("deposit"), scval.to_uint64(i)],
                         value=scval.to_int128(i), ledger=ledger.latest_ledger - n + i, tx_index=1)


def test_a_lagging_node_fails_get_health_but_every_read_still_works(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    _seed_events(ledger, 30)
    seed_entries(ledger, [1, 2])
    ledger.faults = FaultConfig(lagging=True)
    with pytest.raises(SorobanRpcErrorResponse, match="too high"):
        SorobanServer(devnet.url).get_health()
    reader = ChainReader(devnet.url, FAST)
    try:
        events, latest = reader.get_events(contract_ids=[CONTRACT])
        read = reader.get_entries([entry_key(1), entry_key(2)])
        start = datetime.fromtimestamp(ledger.ledger_close_time(ledger.latest_ledger), UTC) - timedelta(days=2)
        window, _ = ledger_window(reader, start, start + timedelta(days=1))
    finally:
        reader.close()
    assert len(events) == 30 and latest == ledger.latest_ledger
    assert len(read.entries) == 2 and not read.failed
    assert window.ledgers == 86_400 // 5
    assert ledger.request_counts["getHealth"] == 1  # only the test's own call


def test_a_provider_page_limit_below_ours_is_read_from_its_error_and_kept() -> None:
    ledger = DevnetLedger(ledger_close_seconds=math.inf, max_events_limit=40)
    with DevnetServer(ledger) as devnet:
        _seed_events(ledger, 130)
        reader = ChainReader(devnet.url, FAST)
        start = ledger.latest_ledger - 200  # one scan: only the page limit decides the request count
        try:
            events, _ = reader.get_events(contract_ids=[CONTRACT], start_ledger=start)
            again, _ = reader.get_events(contract_ids=[CONTRACT], start_ledger=start)
        finally:
            reader.close()
    assert len(events) == len(again) == 130
    assert reader.provider_page_limit == 40
    # Each read: its window probe, then 4 pages of 40; the first page of 1,000 was refused once
    # (-32602 is not retried as is) and never asked again.
    assert ledger.request_counts["getEvents"] == (1 + 1 + 4) + (1 + 4)


def test_a_response_larger_than_the_limit_is_a_clear_error_not_retried(
    ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    keys = [entry_key(i) for i in range(50)]
    seed_entries(ledger, list(range(50)))
    ledger.reset_counters()
    reader = ChainReader(devnet.url, ReaderSettings(backoff_initial_s=0.001, max_response_bytes=4096))
    try:
        read = reader.get_entries(keys)
    finally:
        reader.close()
    assert set(read.failed) == set(keys) and not read.entries
    assert all("exceeded RPC_MAX_RESPONSE_BYTES=4,096" in reason and "after 1 attempt" in reason
               for reason in read.failed.values())
    assert ledger.request_counts["getLedgerEntries"] == 1


def test_getledgers_pages_larger_than_the_limit_are_read_errors_not_crashes(
    ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    """Whole ledgers make getLedgers the largest response there is: a replay stops with an RpcReadError
    naming the limit, and latency's close-time lookup goes without those ledgers."""
    latest = ledger.latest_ledger
    ledger.reset_counters()
    reader = ChainReader(devnet.url, ReaderSettings(backoff_initial_s=0.001, max_response_bytes=2048, max_in_flight=1))
    try:
        with pytest.raises(RpcReadError, match="exceeded RPC_MAX_RESPONSE_BYTES=2,048"):
            replay(reader, latest - 40, latest + 1, Watch(contracts=frozenset({CONTRACT})))
        assert ledger_close_times(reader, list(range(latest - 150, latest + 1))) == {}
    finally:
        reader.close()
    assert ledger.request_counts["getLedgers"] == 3  # none retried: the ledger before the range, a page, a cluster


class _QuietHandler(BaseHTTPRequestHandler):
    """Answers with `reply` and logs nothing."""

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _served(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A local HTTP server with `handler`, its URL while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


_ECHO = object()
"""Answer with the request's own id."""


@contextmanager
def _answering_with_id(answer_id: object, content_type: str = "application/json",
                       error: str | None = None) -> Iterator[str]:
    """A JSON-RPC endpoint that answers getLatestLedger with the given response id (or `error`)."""

    class Handler(_QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = ({"error": {"code": -32603, "message": error}} if error is not None else {"result": {
                "id": "ab" * 32, "protocolVersion": 23, "sequence": 7, "closeTime": "1", "headerXdr": "",
                "metadataXdr": ""}})
            answered = request["id"] if answer_id is _ECHO else answer_id
            body = json.dumps({"jsonrpc": "2.0", "id": answered, **answer}, ensure_ascii=False, allow_nan=False).encode()
            self.reply(200, content_type, body)

    with _served(Handler) as url:
        yield url


def test_a_response_to_another_request_is_refused() -> None:
    with _answering_with_id("someone-else") as url:
        reader = ChainReader(url, ReaderSettings(backoff_initial_s=0.001, max_attempts=2))
        with pytest.raises(Exception, match="answered request id .* with the response of id 'someone-else'"):
            reader.latest_ledger()
        with pytest.raises(ResponseIdMismatchError):
            reader.server.get_latest_ledger()
        reader.close()


def test_json_is_read_as_utf_8_whatever_charset_the_content_type_implies() -> None:
    """RFC 8259: JSON between systems is UTF-8. A proxy answering `text/plain` (which `requests` reads
    as ISO-8859-1) must not garble a provider's message."""
    with _answering_with_id(_ECHO, content_type="text/plain", error="latence élevée: 63 s") as url:
        reader = ChainReader(url, ReaderSettings(backoff_initial_s=0.001, max_attempts=1))
        try:
            with pytest.raises(SorobanRpcErrorResponse) as raised:
                reader.server.get_latest_ledger()
        finally:
            reader.close()
    assert raised.value.message == "latence élevée: 63 s"


def test_ledger_searches_take_a_handful_of_requests(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    reader = ChainReader(devnet.url, FAST)
    try:
        now = datetime.fromtimestamp(ledger.ledger_close_time(ledger.latest_ledger), UTC)
        searches = []
        for days_ago in (1, 3, 6):
            start = (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0)
            window, requests = ledger_window(reader, start, start + timedelta(days=1))
            assert ledger.ledger_close_time(window.start_ledger) >= start.timestamp() > ledger.ledger_close_time(
                window.start_ledger - 1)
            searches.append(requests)
    finally:
        reader.close()
    assert max(searches) <= 6  # a binary search over 120,960 ledgers needs ~17 probes per bound


@contextmanager
def _answering_in_turn(answers: list[tuple[int, object]]) -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A JSON-RPC endpoint giving each request the next (HTTP status, body) in turn, the body as JSON
    with the request's id (a dict) or as it is (bytes); it also yields the requests it received."""
    received: list[dict[str, object]] = []

    class Handler(_QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(request)
            status, answer = answers[min(len(received), len(answers)) - 1]
            body = (answer if isinstance(answer, bytes)
                    else json.dumps({"jsonrpc": "2.0", "id": request["id"], **answer}, allow_nan=False).encode())
            self.reply(status, "application/json", body)

    with _served(Handler) as url:
        yield url, received


def _entry(key: str, **fields: object) -> dict[str, object]:
    return {"key": key, "xdr": "AAAABg==", "lastModifiedLedgerSeq": 5, **fields}


@pytest.mark.parametrize(("answer", "reason"), [
    ((200, {"result": {"entries": []}}), "the result has no latestLedger"),
    ((200, {"result": {"latestLedger": 9, "entries": {"key": "k"}}}), "entries is not a list of objects"),
    ((200, {"result": {"latestLedger": 9, "entries": [{"xdr": "AAAABg==", "lastModifiedLedgerSeq": 5}]}}),
     "an entry without 'key'"),
    ((200, {"result": {"latestLedger": 9, "entries": [_entry("k0", lastModifiedLedgerSeq="5")]}}),
     "key, xdr or ledger sequence has the wrong type"),
    ((200, {"result": {"latestLedger": 9, "entries": [_entry("k0", liveUntilLedgerSeq=True)]}}),
     "key, xdr or ledger sequence has the wrong type"),
    # The body's parser reads an integer beyond 64 bits as a float: refused, never a rounded ledger.
    ((200, {"result": {"latestLedger": 9, "entries": [_entry("k0", liveUntilLedgerSeq=2**64 + 1)]}}),
     "key, xdr or ledger sequence has the wrong type"),
    ((200, {"result": {"latestLedger": 9, "entries": [_entry("someone-else's")]}}),
     "answered 1 keys it was not asked for"),
    ((200, {"result": {"latestLedger": 9, "entries": [_entry("k0"), _entry("k1"), _entry("k0")]}}),
     "answered 1 keys more than once"),
    ((200, {"error": {"code": -32603, "message": "database locked"}}), "RPC error -32603: database locked"),
    ((502, b"<html>bad gateway</html>"), "BadResponseError"),
])
def test_a_malformed_ledger_entries_response_fails_its_batch_with_the_reason(
        answer: tuple[int, object], reason: str) -> None:
    """Every way a getLedgerEntries body can deviate from the schema is a typed, retried failure of
    that batch naming what was wrong, never a crash or a key read as missing."""
    with _answering_in_turn([answer]) as (url, received):
        reader = ChainReader(url, ReaderSettings(backoff_initial_s=0.001, max_attempts=2))
        try:
            read = reader.get_entries(["k0", "k1"])
        finally:
            reader.close()
    assert not read.entries and read.failed_batches == 1
    assert set(read.failed) == {"k0", "k1"}
    assert all(reason in text and "after 2 attempts" in text for text in read.failed.values()), read.failed
    assert len(received) == 2 and all(r["method"] == "getLedgerEntries" for r in received)


def test_a_malformed_response_is_retried_and_the_next_good_one_is_read() -> None:
    good = {"result": {"latestLedger": 9, "entries": [_entry("k1", liveUntilLedgerSeq=99)]}}
    with _answering_in_turn([(200, {"result": {"entries": None}}), (200, good)]) as (url, received):
        reader = ChainReader(url, ReaderSettings(backoff_initial_s=0.001, max_attempts=2))
        try:
            read = reader.get_entries(["k0", "k1"])
        finally:
            reader.close()
    assert not read.failed and read.latest_ledger == 9 and read.requests == 2
    assert {key: (e.data_xdr, e.last_modified_ledger, e.live_until_ledger, e.read_at_ledger)
            for key, e in read.entries.items()} == {"k1": ("AAAABg==", 5, 99, 9)}
    assert received[0]["id"] != received[1]["id"]  # each request its own JSON-RPC id


def test_a_proxy_named_by_the_environment_carries_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client reads the environment once per URL, not per request as `requests` does: a proxy
    named there must still carry the first request and every later one."""
    good = {"result": {"latestLedger": 9, "entries": [_entry("k1")]}}
    with _answering_in_turn([(200, good)]) as (proxy_url, received):
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        # Not resolvable: only the proxy can answer.
        reader = ChainReader("http://rpc.invalid:8000", ReaderSettings(backoff_initial_s=0.001, max_attempts=1))
        try:
            reads = [reader.get_entries(["k0", "k1"]) for _ in range(2)]
        finally:
            reader.close()
    assert [sorted(read.entries) for read in reads] == [["k1"], ["k1"]]
    assert not any(read.failed for read in reads) and len(received) == 2
