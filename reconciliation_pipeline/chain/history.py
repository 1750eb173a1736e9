"""Read-only RPC calls about the chain's history that the batched entry reader does not
make: ledger close times (`getLedgers`), mapping a UTC window to its ledgers, and
transaction statuses (`getTransaction`, one request per hash, bounded in flight).

Retries follow the reader's settings (attempts, exponential backoff); nothing
here can sign or send a transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import pandas as pd
import requests
from stellar_sdk.exceptions import BaseRequestError, SorobanRpcErrorResponse
from stellar_sdk.soroban_rpc import GetLedgersResponse

from reconciliation_pipeline.chain.reader import ChainReader, RetentionWindowError, RpcReadError
from reconciliation_pipeline.chain.replay import fetch_page

T = TypeVar("T")
_NOT_RETRYABLE = (-32600, -32601, -32602)


def call_with_retries(reader: ChainReader, what: str, call: Callable[[], T]) -> T:
    """Run one RPC call with the reader's attempts and backoff; `RpcReadError` when they run out."""
    settings = reader.settings
    for attempt in range(1, settings.max_attempts + 1):
        try:
            return call()
        except (SorobanRpcErrorResponse, BaseRequestError, requests.RequestException, ValueError) as error:
            permanent = isinstance(error, SorobanRpcErrorResponse) and error.code in _NOT_RETRYABLE
            if permanent or attempt == settings.max_attempts:
                raise RpcReadError(f"{what} failed after {attempt} attempt(s): {error}") from error
            time.sleep(settings.backoff_initial_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class LedgerWindow:
    """The ledgers `[start_ledger, end_ledger)` that closed within a UTC time window."""

    start_ledger: int
    end_ledger: int
    oldest_ledger: int
    latest_ledger: int
    complete: bool
    """Whether the RPC's latest ledger closed at or after the window's end."""

    @property
    def ledgers(self) -> int:
        return self.end_ledger - self.start_ledger


def _iso(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _LedgerClock:
    """Close times of single ledgers via `getLedgers`, each asked for once."""

    def __init__(self, reader: ChainReader) -> None:
        self.reader = reader
        self.requests = 0
        self._seen: dict[int, int] = {}

    def bounds(self) -> tuple[int, int, int, int]:
        """(oldest ledger, its close time, latest ledger, its close time)."""
        # Ask about the latest ledger: unlike the oldest, it cannot leave retention in between.
        health = call_with_retries(self.reader, "getHealth", self.reader.server.get_health)
        page = self._page(health.latest_ledger)
        return page.oldest_ledger, page.oldest_ledger_close_time, page.latest_ledger, page.latest_ledger_close_time

    def _page(self, sequence: int) -> GetLedgersResponse:
        self.requests += 1
        page = fetch_page(self.reader, sequence, 1)
        for info in page.ledgers:
            self._seen[info.sequence] = info.ledger_close_time
        return page

    def close_time(self, sequence: int) -> int:
        if sequence not in self._seen:
            self._page(sequence)
        return self._seen[sequence]

    def first_closing_at_or_after(self, unix_seconds: int, low: int, high: int) -> int:
        """The first ledger in [low, high] that closed at or after the time; `high + 1` if none did."""
        while low <= high:
            middle = (low + high) // 2
            if self.close_time(middle) >= unix_seconds:
                high = middle - 1
            else:
                low = middle + 1
        return low


SECONDS_PER_LEDGER = 5
"""For the first guess of how far back a moment is; the search itself reads close times."""
_PROBES = 6


def _served_before(clock: _LedgerClock, start_s: int, oldest: int, oldest_close: int, start: datetime,
                   end: datetime) -> int:
    """A ledger closed at or before `start_s` that getLedgers serves although it is older than the
    RPC's own window (a data-store-backed RPC does): found by probing back from `oldest`."""
    gap = max(1, -(-(oldest_close - start_s) // SECONDS_PER_LEDGER))
    for _ in range(_PROBES):
        candidate = max(1, oldest - gap - gap // 4)
        try:
            if clock.close_time(candidate) <= start_s or candidate == 1:
                return candidate
        except RetentionWindowError as refused:
            raise RetentionWindowError(
                f"cannot index {start.isoformat()} to {end.isoformat()}: it starts before the RPC's retention "
                f"window and before what getLedgers serves. The oldest ledger available is {oldest} (closed "
                f"{_iso(oldest_close)}) for getEvents, and {refused}; use an RPC with longer retention or one "
                "serving ledgers from a data store (an archive provider) to replay this window"
            ) from refused
        gap *= 2
    raise RetentionWindowError(f"cannot find a ledger closed before {start.isoformat()} below ledger {oldest}")


def ledger_window(reader: ChainReader, start: datetime, end: datetime) -> tuple[LedgerWindow, int]:
    """The ledgers that closed in `[start, end)`, found by binary search over close times.

    A window that starts before the RPC's own retention is searched in the ledgers getLedgers
    serves beyond it (an RPC backed by a ledger data store serves all of history); one that starts
    before those too is refused with `RetentionWindowError` naming both: its events can no longer
    be read completely, and an empty answer would look like a quiet day. Returns the window and
    how many getLedgers requests the search took.
    """
    clock = _LedgerClock(reader)
    oldest, oldest_close, latest, latest_close = clock.bounds()
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    low = oldest if start_s >= oldest_close else _served_before(clock, start_s, oldest, oldest_close, start, end)
    first = clock.first_closing_at_or_after(start_s, low, latest)
    stop = clock.first_closing_at_or_after(end_s, first, latest)
    window = LedgerWindow(
        start_ledger=first, end_ledger=stop, oldest_ledger=oldest, latest_ledger=latest, complete=end_s <= latest_close
    )
    return window, clock.requests


def events_window(reader: ChainReader) -> tuple[int, int]:
    """(oldest ledger, its close time) of the RPC's own window, the one getEvents serves."""
    oldest, oldest_close, _, _ = _LedgerClock(reader).bounds()
    return oldest, oldest_close


def ledger_at_or_after(reader: ChainReader, moment: datetime) -> int:
    """The first ledger closing at or after `moment`, clamped to the retained ledgers."""
    clock = _LedgerClock(reader)
    oldest, oldest_close, latest, _ = clock.bounds()
    if int(moment.timestamp()) <= oldest_close:
        return oldest
    return min(clock.first_closing_at_or_after(int(moment.timestamp()), oldest, latest), latest)


TRANSACTION_STATUS_COLUMNS = ("tx_hash", "rpc_status", "rpc_ledger", "retention_starts_at", "latest_ledger", "read_error")


def transaction_statuses(reader: ChainReader, tx_hashes: list[str]) -> pd.DataFrame:
    """`getTransaction` for each hash, `max_in_flight` at a time.

    `rpc_status` is SUCCESS, FAILED or NOT_FOUND; `retention_starts_at` is when the
    RPC's oldest ledger closed, because NOT_FOUND only proves a transaction never
    landed for submissions after that. A hash whose request keeps failing gets
    `read_error` instead.
    """

    def fetch(tx_hash: str) -> dict[str, object]:
        row: dict[str, object] = dict.fromkeys(TRANSACTION_STATUS_COLUMNS)
        row["tx_hash"] = tx_hash
        try:
            response = call_with_retries(reader, "getTransaction", lambda: reader.server.get_transaction(tx_hash))
        except RpcReadError as error:
            row["read_error"] = str(error)
            return row
        row.update(
            rpc_status=response.status.value,
            rpc_ledger=response.ledger,
            retention_starts_at=datetime.fromtimestamp(response.oldest_ledger_close_time, UTC),
            latest_ledger=response.latest_ledger,
        )
        return row

    with ThreadPoolExecutor(max_workers=reader.settings.max_in_flight, thread_name_prefix="get-tx") as pool:
        rows = list(pool.map(fetch, dict.fromkeys(tx_hashes)))
    return pd.DataFrame(rows, columns=list(TRANSACTION_STATUS_COLUMNS), dtype=object)
