"""Batched, bounded, retried reads from Soroban RPC.

`getLedgerEntries` takes at most 200 keys, so keys are read in batches of 200
with a bounded number of requests in flight. Each request has a timeout and is
retried with exponential backoff. A batch that still fails is reported key by
key in `LedgerReadResult.failed`; the other batches are unaffected.
getLedgerEntries responses are parsed here, strictly and column by column, not
into the SDK's per-entry models: at a million entries those models cost more
CPU than decoding the entries. A reader
given a deadline (a run's time limit) issues no request after it: the keys it
did not get to are in `failed` (so they are never mistaken for missing entries)
and also in `unread`, so callers can tell "not checked" from "read failed".
Nothing in here can sign or send a transaction.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

import orjson
import requests
from stellar_sdk import SorobanServer, xdr
from stellar_sdk.client.response import Response
from stellar_sdk.exceptions import BaseRequestError, SorobanRpcErrorResponse, raise_request_exception
from stellar_sdk.soroban_rpc import EventFilter, EventFilterType, EventInfo, GetEventsResponse

from reconciliation_pipeline.chain.rpc_client import GuardedRequestsClient, ParsedResponse, ResponseTooLargeError

MAX_KEYS_PER_REQUEST = 200
_INVALID_PARAMS = -32602
_METHOD_NOT_FOUND = -32601
_INVALID_REQUEST = -32600
EVENT_PAGE_LIMIT = 1000
"""Events asked for per getEvents page by default, lowered to a provider's maximum when it names one."""
_PROVIDER_LIMIT = re.compile(r"-32602\b.*?\blimit\b\D{0,40}?(\d+)", re.IGNORECASE | re.DOTALL)
NOT_READ_TIME_LIMIT = "not read: the run's time limit was reached"
"""The `failed` reason of keys a reader skipped because its deadline had passed."""

T = TypeVar("T")
ProgressCallback = Callable[[int, int], None]
"""Called as (batches done, batches total) while a read runs."""


@dataclass(frozen=True)
class ReaderSettings:
    batch_size: int = MAX_KEYS_PER_REQUEST
    max_in_flight: int = 5
    max_attempts: int = 3
    backoff_initial_s: float = 1.0
    request_timeout_s: float = 10.0
    max_response_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_KEYS_PER_REQUEST:
            raise ValueError(f"batch_size must be between 1 and {MAX_KEYS_PER_REQUEST}, got {self.batch_size}")
        if self.max_in_flight < 1 or self.max_attempts < 1:
            raise ValueError("max_in_flight and max_attempts must be at least 1")
        if self.max_response_bytes < 1024:
            raise ValueError(f"max_response_bytes must be at least 1024, got {self.max_response_bytes}")


@dataclass(frozen=True)
class FetchedEntry:
    data_xdr: str
    last_modified_ledger: int
    live_until_ledger: int | None
    read_at_ledger: int


@dataclass(frozen=True)
class EntryBatch:
    """One getLedgerEntries response, column by column: entry i is `keys[i]`, `xdrs[i]`, ..."""

    keys: list[str]
    xdrs: list[str]
    last_modified_ledgers: list[int]
    live_until_ledgers: list[int | None]
    read_at_ledger: int
    """The response's `latestLedger`."""

    def fetched(self) -> Iterator[tuple[str, FetchedEntry]]:
        for key, data_xdr, modified, live_until in zip(
                self.keys, self.xdrs, self.last_modified_ledgers, self.live_until_ledgers, strict=True):
            yield key, FetchedEntry(data_xdr, modified, live_until, self.read_at_ledger)


BatchCallback = Callable[[EntryBatch], None]
"""Receives each batch's entries as the batch arrives."""


class MalformedResponseError(ValueError):
    """A getLedgerEntries response that does not follow the RPC's schema (retried, as a garbled
    body may not be garbled again)."""


def _is_int(value: object) -> bool:
    return type(value) is int


def entry_batch(response: Response) -> EntryBatch:
    """A getLedgerEntries response's entries, checked field by field as the SDK's models would:
    an RPC error is `SorobanRpcErrorResponse`, a body that is not JSON the SDK's HTTP error (or
    `JSONDecodeError`), and any other deviation `MalformedResponseError`."""
    if isinstance(response, ParsedResponse):
        body: Any = response.json()
    else:
        try:
            body = json.loads(response.text)
        except json.JSONDecodeError:
            raise_request_exception(response)
            raise
    if not isinstance(body, dict):
        raise MalformedResponseError("getLedgerEntries: the response is not a JSON-RPC object")
    error = body.get("error")
    if error is not None:
        if not isinstance(error, dict) or not _is_int(error.get("code")):
            raise MalformedResponseError(f"getLedgerEntries: an error without a code: {error!r:.200}")
        raise SorobanRpcErrorResponse(error["code"], error.get("message"), error.get("data"))
    result = body.get("result")
    if not isinstance(result, dict) or not _is_int(result.get("latestLedger")):
        raise MalformedResponseError("getLedgerEntries: the result has no latestLedger")
    entries = result.get("entries") or []
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise MalformedResponseError("getLedgerEntries: entries is not a list of objects")
    try:
        keys = [entry["key"] for entry in entries]
        xdrs = [entry["xdr"] for entry in entries]
        modified = [entry["lastModifiedLedgerSeq"] for entry in entries]
    except KeyError as missing:
        raise MalformedResponseError(f"getLedgerEntries: an entry without {missing}") from None
    live_until = [entry.get("liveUntilLedgerSeq") for entry in entries]
    if not (all(type(k) is str for k in keys) and all(type(x) is str for x in xdrs)
            and all(type(m) is int for m in modified) and all(v is None or type(v) is int for v in live_until)):
        raise MalformedResponseError("getLedgerEntries: an entry's key, xdr or ledger sequence has the wrong type")
    return EntryBatch(keys, xdrs, modified, live_until, result["latestLedger"])


@dataclass
class LedgerReadResult:
    """What a read returned. Keys in neither `entries` nor `failed` do not exist on chain."""

    entries: dict[str, FetchedEntry] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    latest_ledger: int | None = None
    requests: int = 0
    failed_batches: int = 0
    unread: set[str] = field(default_factory=set)
    """Keys never requested because the reader's deadline passed (also in `failed`)."""


class RpcReadError(RuntimeError):
    """A read that failed after all its attempts."""


class RetentionWindowError(ValueError):
    """A ledger window the RPC no longer (or not yet) holds."""


def _is_retryable(error: Exception) -> bool:
    if isinstance(error, ResponseTooLargeError):
        return False
    if isinstance(error, SorobanRpcErrorResponse):
        return error.code not in (_INVALID_PARAMS, _METHOD_NOT_FOUND, _INVALID_REQUEST)
    return isinstance(error, (requests.RequestException, BaseRequestError, ValueError))


def _describe(error: Exception) -> str:
    if isinstance(error, SorobanRpcErrorResponse):
        return f"RPC error {error.code}: {error.message}"
    return f"{type(error).__name__}: {error}"


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _cursor_ledger(cursor: str) -> int:
    """The ledger a getEvents cursor points into (its TOID's high 32 bits)."""
    return int(cursor.split("-", 1)[0]) >> 32


class ChainReader:
    """Read-only Soroban RPC access with batching, bounded concurrency and retries."""

    def __init__(
        self,
        rpc_url: str,
        settings: ReaderSettings = ReaderSettings(),
        sleep: Callable[[float], None] = time.sleep,
        deadline: float | None = None,
        request_slots: AbstractContextManager[Any] | None = None,
    ) -> None:
        """`deadline` is a `time.monotonic()` instant after which no request is issued.

        `request_slots` (a semaphore) is held around each getLedgerEntries request: readers that
        share one (a sweep's workers, in threads or processes) have at most its count in flight
        together, whatever each one's `max_in_flight`."""
        self.settings = settings
        self._sleep = sleep
        self.deadline = deadline
        self._request_slots = request_slots if request_slots is not None else nullcontext()
        # The SDK's own client retries POSTs; our loop owns retries instead, so
        # attempts, backoff and the per-request timeout are exactly as configured.
        self._client = GuardedRequestsClient(
            max_response_bytes=settings.max_response_bytes,
            pool_size=settings.max_in_flight,
            num_retries=0,
            post_timeout=settings.request_timeout_s,
        )
        self.server = SorobanServer(rpc_url, client=self._client)
        self._request_ids = itertools.count(1)
        self.provider_page_limit: int | None = None
        """The provider's own getEvents maximum, once it named one."""

    def close(self) -> None:
        self.server.close()

    def past_deadline(self, after_s: float = 0.0) -> bool:
        """Whether the deadline (if any) has passed, or will have in `after_s` seconds."""
        return self.deadline is not None and time.monotonic() + after_s >= self.deadline

    def _with_retries(self, call: Callable[[], T]) -> tuple[T | None, str | None, int]:
        """Run `call` with retries; returns (result, error, attempts).

        A retry whose backoff would end past the deadline is not attempted.
        """
        last_error = ""
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                return call(), None, attempt
            except Exception as error:
                last_error = _describe(error)
                attempts = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
                if not _is_retryable(error) or attempt == self.settings.max_attempts:
                    return None, f"{last_error} ({attempts})", attempt
                delay = self.settings.backoff_initial_s * 2 ** (attempt - 1)
                if self.past_deadline(delay):
                    return None, f"{last_error} ({attempts}; no retry past the run's time limit)", attempt
                self._sleep(delay)
        return None, last_error, self.settings.max_attempts

    def latest_ledger(self) -> int:
        response, error, _ = self._with_retries(self.server.get_latest_ledger)
        if response is None:
            raise RpcReadError(f"getLatestLedger failed: {error}")
        return response.sequence

    def _ledger_entries(self, keys: Sequence[str]) -> EntryBatch:
        """One getLedgerEntries request for base64 ledger keys."""
        request = {"jsonrpc": "2.0", "id": next(self._request_ids), "method": "getLedgerEntries",
                   "params": {"keys": list(keys)}}
        # orjson parses a 200-entry body in a third of json's time. It reads an integer beyond 64 bits
        # as a float, which `entry_batch` refuses as a wrong type like any other.
        with self._request_slots:
            response = self._client.post(self.server.server_url, json_data=request, loads=orjson.loads)
        batch = entry_batch(response)
        answered = set(batch.keys)
        if not answered.issubset(keys):
            raise MalformedResponseError(
                f"getLedgerEntries answered {len(answered.difference(keys))} keys it was not asked for")
        if len(answered) < len(batch.keys):
            raise MalformedResponseError(
                f"getLedgerEntries answered {len(batch.keys) - len(answered)} keys more than once")
        return batch

    def get_entries(
        self,
        keys: Sequence[str],
        progress: ProgressCallback | None = None,
        on_batch: BatchCallback | None = None,
    ) -> LedgerReadResult:
        """Read the entries for base64 ledger keys, `batch_size` keys per request.

        With `on_batch`, each successful batch's entries are handed over as it
        arrives and not kept in the result, so a large sweep is decoded while
        it streams instead of being held whole. At most twice `max_in_flight`
        batches are pending at once, which bounds what waits to be consumed.
        """
        unique_keys = list(dict.fromkeys(keys))
        batches = iter(_chunks(unique_keys, self.settings.batch_size))
        total = -(-len(unique_keys) // self.settings.batch_size)
        result = LedgerReadResult()
        if total == 0:
            return result

        def read_batch(batch: Sequence[str]) -> tuple[Sequence[str], EntryBatch | None, str | None, int]:
            if self.past_deadline():
                return batch, None, NOT_READ_TIME_LIMIT, 0
            response, error, attempts = self._with_retries(lambda: self._ledger_entries(batch))
            return batch, response, error, attempts

        done = 0
        window = 2 * self.settings.max_in_flight
        with ThreadPoolExecutor(max_workers=self.settings.max_in_flight, thread_name_prefix="rpc") as pool:
            pending = {pool.submit(read_batch, batch) for batch in islice(batches, window)}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                pending |= {pool.submit(read_batch, batch) for batch in islice(batches, len(finished))}
                for future in finished:
                    batch, response, error, attempts = future.result()
                    result.requests += attempts
                    if response is None and attempts == 0:
                        result.unread.update(batch)
                        for key in batch:
                            result.failed[key] = NOT_READ_TIME_LIMIT
                    elif response is None:
                        result.failed_batches += 1
                        for key in batch:
                            result.failed[key] = error or "unknown error"
                    else:
                        result.latest_ledger = max(result.latest_ledger or 0, response.read_at_ledger)
                        if on_batch is not None:
                            on_batch(response)
                        else:
                            result.entries.update(response.fetched())
                    done += 1
                    if progress is not None:
                        progress(done, total)
        return result

    def event_window(self, filters: list[EventFilter]) -> tuple[int, int]:
        """(oldest, latest) ledger the RPC serves events for.

        Read from a getEvents response (which reports its own window) at the latest ledger, not
        from getHealth: a real RPC answers getHealth with -32603 while it lags, though it still
        serves every read.
        """
        latest = self.latest_ledger()
        page, _ = self._events_page(
            lambda limit: self.server.get_events(start_ledger=latest, filters=filters, limit=limit), 1)
        return page.oldest_ledger, max(page.latest_ledger, latest)

    def _events_page(self, request: Callable[[int], GetEventsResponse], wanted: int) -> tuple[GetEventsResponse, int]:
        """One getEvents page of at most `wanted` events, and the limit it was asked with. A
        provider whose maximum is lower refuses the page with -32602 naming that maximum: it is
        asked again within it, and so is every later page of this reader."""
        while True:
            limit = min(wanted, self.provider_page_limit or wanted)
            page, error, _ = self._with_retries(lambda: request(limit))
            if page is not None:
                assert isinstance(page, GetEventsResponse)
                return page, limit
            match = _PROVIDER_LIMIT.search(error or "")
            lowered = int(match.group(1)) if match is not None else None
            if lowered is None or not 0 < lowered < limit:
                raise RpcReadError(f"getEvents failed: {error}")
            self.provider_page_limit = lowered

    def get_events(
        self,
        *,
        contract_ids: Sequence[str],
        topics: Sequence[Sequence[str]] | None = None,
        start_ledger: int | None = None,
        end_ledger: int | None = None,
        page_limit: int = EVENT_PAGE_LIMIT,
    ) -> tuple[list[EventInfo], int]:
        """All contract events in [start_ledger, end_ledger), following cursors, `page_limit` per
        page (or the provider's maximum, when lower).

        Defaults to the whole retention window. A window the RPC does not hold
        raises `RetentionWindowError` naming the oldest ledger available.
        Returns the events and the latest ledger the RPC reported.
        """
        filters = contract_event_filters(contract_ids, topics)
        oldest, latest = self.event_window(filters)
        start = oldest if start_ledger is None else start_ledger
        if start < oldest or start > latest:
            raise RetentionWindowError(
                f"ledger window starting at {start} is outside the RPC's retention: "
                f"the oldest ledger available is {oldest} and the latest is {latest}"
            )
        stop = latest + 1 if end_ledger is None else min(end_ledger, latest + 1)
        events: list[EventInfo] = []
        cursor: str | None = None
        while True:
            if cursor is None:
                page, limit = self._events_page(lambda limit: self.server.get_events(
                    start_ledger=start, end_ledger=stop, filters=filters, limit=limit), page_limit)
            else:
                page_cursor = cursor
                page, limit = self._events_page(lambda limit: self.server.get_events(
                    filters=filters, cursor=page_cursor, limit=limit), page_limit)
            events.extend(e for e in page.events if e.ledger < stop)
            if len(page.events) < limit:
                # A page that is not full ends with a cursor at the last ledger it
                # scanned completely: done once that reaches the window's last ledger.
                scanned_to = _cursor_ledger(page.cursor)
                if page.cursor == cursor or scanned_to >= min(stop - 1, page.latest_ledger):
                    break
            elif page.events[-1].ledger >= stop:
                break
            cursor = page.cursor
        return events, latest


def contract_event_filters(contract_ids: Sequence[str], topics: Sequence[Sequence[str]] | None) -> list[EventFilter]:
    """The one getEvents filter for the contracts' events (topics as `scval_topic` segments)."""
    return [EventFilter(event_type=EventFilterType.CONTRACT, contract_ids=list(contract_ids),
                        topics=[list(t) for t in topics] if topics else None)]


def scval_topic(value: xdr.SCVal) -> str:
    """A topic segment for an event filter: the ScVal's base64 XDR."""
    return value.to_xdr()
