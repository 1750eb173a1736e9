"""Ledger-metadata replay: the watched contracts' events and entry changes, from `getLedgers`.

`getEvents` serves about 7 days; `getLedgers` serves each ledger's full
`LedgerCloseMeta`, and an RPC backed by a ledger data store (archive providers)
serves it for all of history. `replay` pages `getLedgers` over a ledger range
(pages sized to about `PAGE_TARGET_BYTES`, a few in flight, each request
retried with the reader's backoff and bounded by its deadline; a long range is
parsed in worker processes, one per core) and yields, for
the watched contracts only, their contract events (with the ids `getEvents`
gives them) and their contract-data changes (created, updated, removed,
restored, with the state before); transactions that do not touch them are
skipped without being decoded (`chain.ledgermeta`).

Each ledger's `previousLedgerHash` is checked against the hash of the ledger
before it, and its hash against its header: a ledger missing from the pages,
a broken chain or metadata that does not parse is a `LedgerProblem`, which the
pipeline records as a finding, never as silence.

`read_events` is what event-based assets call: `getEvents` inside its window,
the replay before it when `getLedgers` serves those ledgers, and a refusal
naming both windows when neither does.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from stellar_sdk.exceptions import BaseRequestError, SorobanRpcErrorResponse
from stellar_sdk.soroban_rpc import EventInfo, GetLedgersResponse

from reconciliation_pipeline.chain.fastxdr import XdrError
from reconciliation_pipeline.chain.ledgermeta import EntryChange, LedgerMeta, MetaEvent, Watch, parse_ledger
from reconciliation_pipeline.chain.reader import ChainReader, RetentionWindowError, RpcReadError, contract_event_filters
from reconciliation_pipeline.chain.rpc_client import ResponseTooLargeError

MAX_PAGE_LEDGERS = 200
"""getLedgers' largest `limit`."""
FIRST_PAGE_LEDGERS = 10
PAGE_TARGET_BYTES = 4_000_000
"""Pages are resized toward this many bytes of metadata: a busy network's ledger is about a
megabyte, an idle one's a kilobyte, and one response must stay well inside a request timeout."""
EVENTS_MARGIN = 10
"""Ledgers the replay reaches past getEvents's oldest ledger, which moves on as ledgers close."""
MISSING, BROKEN_CHAIN, UNDECODABLE = "missing", "broken_chain", "undecodable"
EVENTS_SOURCE, REPLAY_SOURCE = "getEvents", "getLedgers"
_RANGE_ERROR = re.compile(r"oldest ledger: (\d+)")
_OUT_OF_RANGE = (-32600, -32602)


@dataclass(frozen=True)
class LedgerProblem:
    """A ledger the replay could not vouch for."""

    ledger: int
    kind: str
    """`missing` (not in the pages: `ledgers` of them from here), `broken_chain` (its hashes do not
    link to the ledger before), `undecodable` (its metadata does not parse)."""
    detail: str
    ledgers: int = 1


@dataclass(frozen=True)
class ReplayedChange:
    ledger: int
    closed_at: datetime
    change: EntryChange


@dataclass
class Replay:
    """What a replay of `[start, end)` read."""

    start: int
    end: int
    events: list[EventInfo] = field(default_factory=list)
    changes: list[ReplayedChange] = field(default_factory=list)
    problems: list[LedgerProblem] = field(default_factory=list)
    close_times: dict[int, int] = field(default_factory=dict)
    """Ledger -> unix close time, of every ledger read."""
    requests: int = 0
    bytes_read: int = 0
    """Bytes of ledger metadata and headers received (decoded from base64)."""
    transactions: int = 0
    decoded: int = 0
    """Transactions decoded because they touch a watched contract or key."""
    complete: bool = True
    """False when the reader's deadline stopped the replay before `end`."""

    @property
    def ledgers(self) -> int:
        return len(self.close_times)


def event_id(ledger: int, tx_index: int, op_index: int, event_index: int) -> str:
    """The id getEvents gives an event: the TOID of its operation, then its index in it."""
    return "%019d-%010d" % ((ledger << 32) | (tx_index << 12) | op_index, event_index)


def _event_info(ledger: int, closed_at: datetime, event: MetaEvent) -> EventInfo:
    return EventInfo.model_validate({
        "type": event.event_type, "ledger": ledger, "ledgerClosedAt": closed_at,
        "contractId": event.contract_id,
        "id": event_id(ledger, event.tx_index, event.op_index, event.event_index),
        "topic": list(event.topic), "value": event.value, "operationIndex": event.op_index,
        "transactionIndex": event.tx_index, "txHash": event.tx_hash,
    })


def served_oldest(error: Exception) -> int | None:
    """The oldest ledger an RPC's range error names, if it names one."""
    match = _RANGE_ERROR.search(str(getattr(error, "message", error)))
    return int(match.group(1)) if match else None


def fetch_page(reader: ChainReader, start: int, limit: int) -> GetLedgersResponse:
    """One page, retried with the reader's backoff; a range the RPC does not serve raises
    `RetentionWindowError` at once."""
    settings = reader.settings
    for attempt in range(1, settings.max_attempts + 1):
        try:
            return reader.server.get_ledgers(start_ledger=start, limit=limit)
        except SorobanRpcErrorResponse as error:
            if error.code in _OUT_OF_RANGE:
                oldest = served_oldest(error)
                raise RetentionWindowError(
                    f"getLedgers does not serve ledger {start}"
                    + (f": the oldest ledger it serves is {oldest}" if oldest is not None else f" ({error.message})")
                ) from error
            failure: Exception = error
        except ResponseTooLargeError as error:  # the same request would be as large again
            raise RpcReadError(f"getLedgers from {start} ({limit} ledgers): {error}") from error
        except (BaseRequestError, requests.RequestException, ValueError) as error:
            failure = error
        if attempt == settings.max_attempts or reader.past_deadline(settings.backoff_initial_s * 2 ** (attempt - 1)):
            raise RpcReadError(f"getLedgers from {start} failed after {attempt} attempt(s): {failure}") from failure
        time.sleep(settings.backoff_initial_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _topic_matches(topic: Sequence[str], filters: Sequence[Sequence[str]] | None) -> bool:
    """getEvents's topic filter semantics: `*` matches one segment, a trailing `**` any rest."""
    if not filters:
        return True
    for wanted in filters:
        flexible = bool(wanted) and wanted[-1] == "**"
        segments = wanted[:-1] if flexible else wanted
        if len(topic) < len(segments) or (not flexible and len(topic) != len(segments)):
            continue
        if all(w == "*" or w == t for w, t in zip(segments, topic, strict=False)):
            return True
    return False


PARALLEL_FROM_LEDGERS = 500
"""A replay this long parses in worker processes (one per core, at most PARSE_WORKERS): parsing is
CPU-bound, and a day is 17,280 ledgers. Shorter ones parse in-process (no workers to start)."""
PARSE_WORKERS = 4


def _parse(metadata_xdr: str, watch: Watch, needles: tuple[bytes, ...]) -> LedgerMeta | str:
    """One ledger's metadata parsed (in a worker process, or here); a message when it does not parse."""
    try:
        return parse_ledger(base64.b64decode(metadata_xdr), watch, needles)
    except XdrError as error:
        return str(error)


@dataclass
class _Pending:
    """A ledger fetched and being parsed, in ledger order."""

    sequence: int
    hash: str
    close_time: int
    after_gap: bool
    parsed: Future[LedgerMeta | str] | LedgerMeta | str


def _workers(ledgers: int) -> int:
    return min(PARSE_WORKERS, os.cpu_count() or 1) if ledgers >= PARALLEL_FROM_LEDGERS else 0


def replay(
    reader: ChainReader,
    start: int,
    end: int,
    watch: Watch,
    *,
    topics: Sequence[Sequence[str]] | None = None,
) -> Replay:
    """Events and contract-data changes of `watch` in ledgers `[start, end)`, and the problems met.

    `topics` filters the events as getEvents's topic filters do (segments canonical base64 ScVal).
    Raises `RetentionWindowError` when getLedgers does not serve `start`.
    """
    result = Replay(start=start, end=end)
    if end <= start:
        return result
    needles = watch.needles()
    state: dict[str, str | None] = {"previous_hash": None}
    if start > 1:
        try:  # the ledger before the range, for the first ledger's previous hash
            page = fetch_page(reader, start - 1, 1)
            result.requests += 1
            if page.ledgers and page.ledgers[0].sequence == start - 1:
                state["previous_hash"] = page.ledgers[0].hash
        except RetentionWindowError:
            pass
    workers = _workers(end - start)
    parsed: deque[_Pending] = deque()

    def drain(keep: int) -> None:
        """Take the parsed ledgers in order until at most `keep` are still pending."""
        while len(parsed) > keep:
            item = parsed.popleft()
            outcome = item.parsed.result() if isinstance(item.parsed, Future) else item.parsed
            if item.after_gap:
                state["previous_hash"] = None
            state["previous_hash"] = _read_ledger(result, item, outcome, state["previous_hash"], topics)

    limit = FIRST_PAGE_LEDGERS
    expected = start
    latest: int | None = None
    spawn = multiprocessing.get_context("spawn")
    with ThreadPoolExecutor(max_workers=reader.settings.max_in_flight, thread_name_prefix="replay") as pool, (
            ProcessPoolExecutor(max_workers=workers, mp_context=spawn) if workers else nullcontext()) as parsers:
        pending: list[tuple[int, int, Future[GetLedgersResponse]]] = []
        next_start = start
        while pending or next_start < end:
            while next_start < end and len(pending) < reader.settings.max_in_flight and not reader.past_deadline():
                size = min(limit, end - next_start, MAX_PAGE_LEDGERS)
                pending.append((next_start, size, pool.submit(fetch_page, reader, next_start, size)))
                next_start += size
            if not pending:
                result.complete = False
                break
            page_start, size, future = pending.pop(0)
            try:
                page = future.result()
            except Exception:
                for _, _, other in pending:
                    other.cancel()
                raise
            result.requests += 1
            latest = page.latest_ledger
            page_bytes, page_ledgers = 0, 0
            gap = False
            for info in page.ledgers:
                if info.sequence < expected or info.sequence >= end:
                    continue
                if info.sequence > expected:
                    missing = info.sequence - expected
                    result.problems.append(LedgerProblem(
                        expected, MISSING, f"getLedgers left out {missing} ledger(s) {expected}..{info.sequence - 1}",
                        ledgers=missing))
                    gap = True
                metadata = info.metadata_xdr
                page_bytes += (len(metadata) * 3 // 4 - metadata[-2:].count("=")) + len(info.header_xdr) * 3 // 4
                outcome = (parsers.submit(_parse, metadata, watch, needles) if parsers is not None
                           else _parse(metadata, watch, needles))
                parsed.append(_Pending(info.sequence, info.hash, info.ledger_close_time, gap, outcome))
                gap = False
                expected = info.sequence + 1
                page_ledgers += 1
            page_end = min(page_start + size, end, page.latest_ledger + 1)
            if expected < page_end:
                missing = page_end - expected
                result.problems.append(LedgerProblem(
                    expected, MISSING, f"getLedgers left out {missing} ledger(s) {expected}..{page_end - 1}",
                    ledgers=missing))
                expected = page_end
                parsed.append(_Pending(page_end, "", 0, True, ""))  # only breaks the chain check
            drain(keep=4 * workers)
            result.bytes_read += page_bytes
            if page_bytes:
                limit = max(1, min(MAX_PAGE_LEDGERS, PAGE_TARGET_BYTES * page_ledgers // page_bytes))
            if page.latest_ledger + 1 < end and next_start > page.latest_ledger:
                end = page.latest_ledger + 1  # the chain has not reached the end of the range yet
                result.end = end
        drain(keep=0)
    if latest is not None and expected < min(end, latest + 1):
        result.complete = False
    return result


def _read_ledger(result: Replay, item: _Pending, meta: LedgerMeta | str, previous_hash: str | None,
                 topics: Sequence[Sequence[str]] | None) -> str | None:
    """One parsed ledger into the result; returns its hash (the next ledger's expected previous hash)."""
    if not item.hash:  # the marker a gap at a page's end leaves: the next ledger has no previous to check
        return None
    sequence, ledger_hash = item.sequence, item.hash
    result.close_times[sequence] = item.close_time
    if isinstance(meta, str):
        result.problems.append(LedgerProblem(sequence, UNDECODABLE, f"its LedgerCloseMeta does not parse: {meta}"))
        return ledger_hash
    header = meta.header
    if header.sequence != sequence or header.hash != ledger_hash or not header.hash_matches_header:
        result.problems.append(LedgerProblem(
            sequence, BROKEN_CHAIN, f"its header (ledger {header.sequence}, hash {header.hash}) does not hash to "
            f"the ledger hash {ledger_hash} getLedgers gives"))
    elif previous_hash is not None and header.previous_hash != previous_hash:
        result.problems.append(LedgerProblem(
            sequence, BROKEN_CHAIN, f"its previousLedgerHash {header.previous_hash} is not the hash {previous_hash} "
            f"of ledger {sequence - 1}"))
    result.transactions += meta.transactions
    result.decoded += meta.decoded
    closed_at = datetime.fromtimestamp(item.close_time, UTC)
    result.events += [_event_info(sequence, closed_at, e) for e in meta.events
                      if e.event_type == "contract" and _topic_matches(e.topic, topics)]
    result.changes += [ReplayedChange(sequence, closed_at, c) for c in meta.changes]
    return ledger_hash


@dataclass(frozen=True)
class WindowEvents:
    """A contract's events in a ledger range, and where they came from."""

    events: list[EventInfo]
    source: str
    """`getEvents`, `getLedgers` (metadata replay) or `getLedgers+getEvents`."""
    events_oldest: int
    """The oldest ledger getEvents served when asked."""
    replay: Replay | None = None


def read_events(
    reader: ChainReader,
    *,
    contract_ids: Sequence[str],
    topics: Sequence[Sequence[str]] | None,
    start_ledger: int | None,
    end_ledger: int | None,
    max_replay_ledgers: int,
) -> WindowEvents:
    """The contracts' events in `[start_ledger, end_ledger)` (from getEvents's oldest ledger by default).

    Ledgers before getEvents's window are replayed from getLedgers metadata, at most
    `max_replay_ledgers` of them; a range neither method serves (or longer than that) raises
    `RetentionWindowError` naming both windows.
    """
    oldest, latest = reader.event_window(contract_event_filters(contract_ids, topics))
    start = oldest if start_ledger is None else start_ledger
    stop = latest + 1 if end_ledger is None else min(end_ledger, latest + 1)
    if start >= oldest:
        events, _ = reader.get_events(contract_ids=list(contract_ids), topics=topics, start_ledger=start,
                                      end_ledger=stop)
        return WindowEvents(events, EVENTS_SOURCE, oldest)
    replay_end = min(stop, oldest + EVENTS_MARGIN)
    if replay_end - start > max_replay_ledgers:
        raise RetentionWindowError(
            f"ledgers {start}..{replay_end - 1} are before getEvents's retention window (it serves ledgers from "
            f"{oldest}); "
            f"replaying them from getLedgers would read {replay_end - start} ledgers, more than the "
            f"{max_replay_ledgers} a run may replay (REPLAY_MAX_LEDGERS)")
    try:
        replayed = replay(reader, start, replay_end, Watch(contracts=frozenset(contract_ids)), topics=topics)
    except RetentionWindowError as refused:
        raise RetentionWindowError(
            f"ledgers from {start} are outside both retention windows: getEvents serves ledgers from {oldest} and "
            f"{refused}"
        ) from refused
    if not replayed.complete:
        raise RpcReadError(f"the replay of ledgers {start}..{replay_end - 1} stopped at the run's time limit")
    events = list(replayed.events)
    source = REPLAY_SOURCE
    if stop > replay_end:
        recent, _ = reader.get_events(contract_ids=list(contract_ids), topics=topics, start_ledger=replay_end,
                                      end_ledger=stop)
        events += recent
        source = f"{REPLAY_SOURCE}+{EVENTS_SOURCE}"
    return WindowEvents(events, source, oldest, replayed)
