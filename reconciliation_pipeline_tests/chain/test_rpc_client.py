"""The RPC client's POSTs straight through urllib3 behave as the `requests` session would.

A POST skips `requests`' session machinery (`rpc_client`), so what that machinery did for a
provider is checked here against a real local HTTP/1.1 server that keeps connections alive:
the session's headers, ~/.netrc credentials, compressed bodies, redirects, cookies, and a
connection left with unread bytes by a refused response.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reconciliation_pipeline.chain.reader import ChainReader, ReaderSettings

FAST = ReaderSettings(backoff_initial_s=0.001, max_attempts=1)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    request: dict[str, object]


@dataclass
class Provider:
    url: str
    received: list[Received] = field(default_factory=list)


Answer = Callable[[Received, int], tuple[int, dict[str, str], bytes]]
"""(what arrived, how many requests before it) -> (status, extra headers, body)."""


def _ledger(request: dict[str, object], sequence: int = 7) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {
        "id": "ab" * 32, "protocolVersion": 23, "sequence": sequence, "closeTime": "1", "headerXdr": "",
        "metadataXdr": ""}}).encode()


@contextmanager
def _provider(answer: Answer) -> Iterator[Provider]:
    provider = Provider("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as providers answer

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            arrived = Received(self.path, dict(self.headers.items()),
                               json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            status, headers, body = answer(arrived, len(provider.received))
            provider.received.append(arrived)
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()


def _latest_ledgers(url: str, times: int, settings: ReaderSettings = FAST) -> list[int]:
    reader = ChainReader(url, settings)
    try:
        return [reader.latest_ledger() for _ in range(times)]
    finally:
        reader.close()


def test_every_post_carries_the_sessions_headers() -> None:
    with _provider(lambda arrived, _: (200, {}, _ledger(arrived.request))) as provider:
        assert _latest_ledgers(provider.url, 2) == [7, 7]
    for arrived in provider.received:
        assert arrived.headers["Content-Type"] == "application/json"
        assert arrived.headers["X-Client-Name"] == "py-stellar-base"
        assert arrived.headers["User-Agent"].startswith("py-stellar-base/")


def test_netrc_credentials_go_with_every_post(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login reader password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with _provider(lambda arrived, _: (200, {}, _ledger(arrived.request))) as provider:
        assert _latest_ledgers(provider.url, 2) == [7, 7]
    assert [a.headers.get("Authorization") for a in provider.received] == ["Basic cmVhZGVyOnMzY3JldA=="] * 2


def test_a_gzip_body_is_read_decompressed() -> None:
    with _provider(lambda arrived, _: (200, {"Content-Encoding": "gzip"},
                                       gzip.compress(_ledger(arrived.request)))) as provider:
        assert _latest_ledgers(provider.url, 2) == [7, 7]


def test_a_redirect_is_followed_with_the_same_request() -> None:
    def answer(arrived: Received, _: int) -> tuple[int, dict[str, str], bytes]:
        if arrived.path != "/moved":
            return 307, {"Location": "/moved"}, b""
        return 200, {}, _ledger(arrived.request, sequence=11)

    with _provider(answer) as provider:
        assert _latest_ledgers(provider.url, 2) == [11, 11]
    assert [a.path for a in provider.received] == ["/", "/moved"] * 2
    assert provider.received[0].request == provider.received[1].request


def test_a_cookie_the_provider_sets_is_sent_back_on_every_later_post() -> None:
    """A load balancer's sticky session: `requests` keeps the cookie and sends it back."""
    def answer(arrived: Received, before: int) -> tuple[int, dict[str, str], bytes]:
        headers = {"Set-Cookie": "node=b7; Path=/"} if before == 0 else {}
        return 200, headers, _ledger(arrived.request)

    with _provider(answer) as provider:
        assert _latest_ledgers(provider.url, 3) == [7, 7, 7]
    assert [a.headers.get("Cookie") for a in provider.received] == [None, "node=b7", "node=b7"]


def test_a_refused_large_body_does_not_leave_its_bytes_for_the_next_answer() -> None:
    """A body over RPC_MAX_RESPONSE_BYTES is left unread: its connection must not be used again,
    or the next request would read the rest of it as its own answer."""
    def answer(arrived: Received, before: int) -> tuple[int, dict[str, str], bytes]:
        body = _ledger(arrived.request, sequence=before + 1)
        return 200, {}, (body + b" " * (3 << 20) if before == 0 else body)  # beyond a read chunk

    settings = ReaderSettings(backoff_initial_s=0.001, max_attempts=1, max_response_bytes=4096)
    with _provider(answer) as provider:
        reader = ChainReader(provider.url, settings)
        try:
            with pytest.raises(Exception, match="exceeded RPC_MAX_RESPONSE_BYTES=4,096"):
                reader.latest_ledger()
            assert reader.latest_ledger() == 2
        finally:
            reader.close()
