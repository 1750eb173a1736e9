"""Read-only RPC calls about the chain's history that the batched entry reader does not
make: ledger close times (`getLedgers`), mapping a UTC window to its ledgers, and
transaction statuses (`getTransaction`, one request per hash, bounded in flight).

A real `getLedgers` answers each ledger with its whole `LedgerCloseMeta`, so every probe is
one ledger (`limit=1`) and there are few of them: ledgers close at a nearly steady pace, so
the search interpolates a time's ledger from the close times it knows and needs a handful of
probes where halving would need about 17. The search is also bounded by time.

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
from reconciliation_pipeline.chain.rpc_client import ResponseTooLargeError

T = TypeVar("T")
_NOT_RETRYABLE = (-32600, -32601, -32602)
SEARCH_TIME_LIMIT_S = 120.0
"""One day's ledger search gives up after this long (each probe is also bounded by the request timeout)."""


def call_with_retries(reader: ChainReader, what: str, call: Callable[[], T]) -> T:
    """Run one RPC call with the reader's attempts and backoff; `RpcReadError` when they run out."""
    settings = reader.settings
    for attempt in range(1, settings.max_attempts + 1):
        try:
            return call()
        except ResponseTooLargeError as error:  # the same request would be as large again
            raise RpcReadError(f"{what} failed: {error}") from error
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

    def __init__(self, reader: ChainReader, time_limit_s: float = SEARCH_TIME_LIMIT_S) -> None:
        self.reader = reader
        self.requests = 0
        self._seen: dict[int, int] = {}
        self._deadline = time.monotonic() + time_limit_s

    def bounds(self) -> tuple[int, int, int, int]:
        """(oldest ledger, its close time, latest ledger, its close time)."""
        # Ask about the latest ledger (getLatestLedger, never getHealth: a real RPC answers
        # that with an error while it lags); unlike the oldest, it cannot leave retention in between.
        latest = call_with_retries(self.reader, "getLatestLedger", self.reader.server.get_latest_ledger)
        page = self._page(latest.sequence)
        self._seen[page.oldest_ledger] = page.oldest_ledger_close_time
        self._seen[page.latest_ledger] = page.latest_ledger_close_time
        return page.oldest_ledger, page.oldest_ledger_close_time, page.latest_ledger, page.latest_ledger_close_time

    def _page(self, sequence: int) -> GetLedgersResponse:
        if time.monotonic() > self._deadline:
            raise RpcReadError(f"mapping a time to its ledger took more than {SEARCH_TIME_LIMIT_S:.0f} s "
                               f"({self.requests} getLedgers requests); the RPC is too slow to search")
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
        """The first ledger in [low, high] that closed at or after the time; `high + 1` if none did.

        Keeps the invariant "everything below `low` closed before the time, everything above
        `high` at or after it" and probes where the known close times put the time (clamped
        inside the bracket); every third probe halves the bracket instead, so an uneven pace costs
        at most a binary search's probes.
        """
        below, above = low - 1, high + 1  # the bracket's known ends (close times may be unknown)
        probes = 0
        while low <= high:
            probes += 1
            guess = ((low + high) // 2 if probes % 3 == 0
                     else self._interpolate(unix_seconds, below, above, low, high))
            if self.close_time(guess) >= unix_seconds:
                high, above = guess - 1, guess
            else:
                low, below = guess + 1, guess
        return low

    def _interpolate(self, unix_seconds: int, below: int, above: int, low: int, high: int) -> int:
        # Anchors: the bracket's ends where their close times are known, else its inner bounds.
        first = below if below in self._seen else low
        last = above if above in self._seen else high
        first_time, last_time = self._seen.get(first), self._seen.get(last)
        if first_time is None or last_time is None or last_time <= first_time:
            return (low + high) // 2
        share = (unix_seconds - first_time) / (last_time - first_time)
        return min(max(first + round(share * (last - first)), low), high)


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
