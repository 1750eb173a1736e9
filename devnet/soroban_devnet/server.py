"""JSON-RPC 2.0 over HTTP in front of a `DevnetLedger`.

It speaks enough of stellar-rpc's transport that the unmodified
`stellar_sdk.SorobanServer` (and its `requests` connection pool) can talk to
it: POST bodies, HTTP/1.1 keep-alive with exact Content-Length, errors as
JSON-RPC `error` objects with HTTP 200.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson

from soroban_devnet.ledger import INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, DevnetLedger, RpcError

INVALID_METHOD_COUNTER_KEY = "(invalid)"
"""`request_counts` key for requests that carry no usable method name."""

_POLL_INTERVAL_S = 0.05
_log = logging.getLogger(__name__)


def _error(request_id: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def handle_jsonrpc(ledger: DevnetLedger, body: bytes) -> dict[str, Any]:
    """Turn one request body into a response object: count, inject faults, dispatch."""
    try:
        request = json.loads(body)
    except ValueError as exc:
        ledger.record_request(INVALID_METHOD_COUNTER_KEY)
        return _error(None, PARSE_ERROR, f"parse error: {exc}")
    if not isinstance(request, dict):
        ledger.record_request(INVALID_METHOD_COUNTER_KEY)
        return _error(None, INVALID_REQUEST, "invalid request: expected a JSON-RPC 2.0 request object")
    request_id = request.get("id")
    method = request.get("method")
    if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
        ledger.record_request(INVALID_METHOD_COUNTER_KEY)
        return _error(request_id, INVALID_REQUEST, "invalid request: need jsonrpc '2.0' and a string method")
    ledger.record_request(method)
    params = request.get("params")
    try:
        with ledger.injecting_faults(method, params):
            result = ledger.dispatch(method, params)
    except RpcError as exc:
        return _error(request_id, exc.code, exc.message, exc.data)
    except Exception as exc:  # a handler bug must reach the client as an error, not a dropped connection
        _log.exception("devnet handler for %s failed", method)
        return _error(request_id, INTERNAL_ERROR, f"internal error: {exc}")
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def encode_response(response: dict[str, Any]) -> bytes:
    """The response as compact JSON. orjson writes a 200-entry getLedgerEntries result in a
    twentieth of json's time (json.dumps was two fifths of the devnet's CPU in a sweep); what it
    refuses (integers beyond 64 bits) goes through json. The devnet's results carry no floats,
    so orjson writing NaN as null (where json refuses it) never applies."""
    try:
        return orjson.dumps(response)
    except orjson.JSONEncodeError:
        return json.dumps(response, separators=(",", ":"), allow_nan=False).encode()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, keep-alive
    # clients wait for a delayed ACK (~40 ms) on every request.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "invalid Content-Length")
            return
        response = handle_jsonrpc(self.server.ledger, self.rfile.read(length))
        payload = encode_response(response)
        self.server.ledger.record_response_bytes(len(payload))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: one stderr line per request drowns test and demo output."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], ledger: DevnetLedger) -> None:
        self.ledger = ledger
        super().__init__(address, _RequestHandler)


class DevnetServer:
    """The devnet's HTTP endpoint; binds on construction so `url` is known before `start`."""

    def __init__(self, ledger: DevnetLedger, host: str = "127.0.0.1", port: int = 0) -> None:
        self.ledger = ledger
        self._httpd = _HTTPServer((host, port), ledger)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> DevnetServer:
        """Serve from a daemon thread and return immediately."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL_S},
                name=f"devnet-rpc {self.url}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call more than once."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def serve_forever_blocking(self) -> None:
        """Serve in the calling thread until interrupted (for running the devnet as its own process)."""
        try:
            self._httpd.serve_forever(poll_interval=_POLL_INTERVAL_S)
        except KeyboardInterrupt:
            pass
        finally:
            self._httpd.server_close()

    def __enter__(self) -> DevnetServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
