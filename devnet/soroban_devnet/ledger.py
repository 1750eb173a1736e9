"""In-memory chain state behind the local Soroban JSON-RPC devnet.

The devnet lets the pipeline's chain readers run against something that speaks
the real wire format (STELLAR.md, "JSON-RPC wire format") without a network:
ledger entries and contract events are seeded by hand, ledgers close on a
clock, and faults (latency, failures, poisoned keys) can be injected to test
the readers' retry and isolation logic.

`DevnetLedger` holds the state and the JSON-RPC method handlers; the HTTP
transport lives in `server.py`. All state is guarded by one re-entrant lock so
the threaded HTTP server, seeders and tests can share one instance.
"""

from __future__ import annotations

import base64
import bisect
import collections
import hashlib
import math
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stellar_sdk import StrKey, xdr

STANDALONE_PASSPHRASE = "Standalone Network ; February 2017"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

MAX_LEDGER_ENTRY_KEYS = 200
MAX_EVENT_FILTERS = 5
MAX_CONTRACT_IDS_PER_FILTER = 5
MAX_TOPIC_FILTERS_PER_FILTER = 5
MAX_TOPIC_SEGMENTS = 4
DEFAULT_EVENTS_LIMIT = 100
MAX_EVENTS_LIMIT = 10_000
LEDGER_SCAN_LIMIT = 10_000
MANUAL_CLOSE_SPACING_S = 5

INJECTED_FAILURE_MESSAGE = "devnet: injected failure"

_TX_INDEX_LIMIT = 1 << 20
_OP_INDEX_LIMIT = 1 << 12
_EVENT_INDEX_LIMIT = 1 << 32
_UINT32_LIMIT = 1 << 32
_LEDGER_LIMIT = 1 << 31
_EVENT_ID_RE = re.compile(r"^(\d{1,19})-(\d{1,10})$", re.ASCII)
_TTL_KEY_TYPE = xdr.LedgerEntryType.TTL.value
_EVENT_TYPES = frozenset({"system", "contract", "diagnostic"})

Handler = Callable[[Any], dict[str, Any]]
"""A JSON-RPC method: receives the request's `params` and returns the `result` object."""

EntryRecord = tuple[str, int, int | None]
"""(base64 LedgerEntryData, last_modified_ledger, live_until_ledger or None)."""


class RpcError(Exception):
    """A JSON-RPC error a handler wants sent to the client as `error`."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True)
class FaultConfig:
    """Faults the devnet injects before handling a request.

    Latency and the failure draw apply only to `methods` (all when None);
    poisoned keys fail any getLedgerEntries request that contains one of them.
    """

    latency_s: float = 0.0
    failure_rate: float = 0.0
    failure_seed: int = 0
    methods: frozenset[str] | None = None
    poison_keys: frozenset[str] = frozenset()
    lagging: bool = False
    """getHealth answers -32603 as a real RPC does while its latest ledger is too old; every
    other method keeps serving (so does a real one)."""

    def __post_init__(self) -> None:
        if self.latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, got {self.latency_s}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be within [0, 1], got {self.failure_rate}")

    def applies_to(self, method: str) -> bool:
        """Whether latency and the failure draw apply to `method`."""
        return self.methods is None or method in self.methods


def toid(ledger: int, tx_index: int, op_index: int) -> int:
    """Total order id of an operation, as stellar-core/RPC compute it."""
    return (ledger << 32) | (tx_index << 12) | op_index


def format_event_id(event_toid: int, event_index: int) -> str:
    """Event id / paging cursor: fixed width, so string order is id order."""
    return "%019d-%010d" % (event_toid, event_index)


def parse_event_id(event_id: str) -> tuple[int, int]:
    """Inverse of `format_event_id`; raises ValueError on anything else."""
    match = _EVENT_ID_RE.match(event_id)
    if match is None:
        raise ValueError(f"invalid event id {event_id!r}")
    event_toid, event_index = int(match.group(1)), int(match.group(2))
    if event_toid >= 1 << 63 or event_index >= _EVENT_INDEX_LIMIT:
        raise ValueError(f"invalid event id {event_id!r}")
    return event_toid, event_index


def _window_end_cursor(last_scanned_ledger: int) -> str:
    """Cursor after every possible event of a ledger (RPC's MaxCursor at that ledger)."""
    return format_event_id(
        toid(last_scanned_ledger, _TX_INDEX_LIMIT - 1, _OP_INDEX_LIMIT - 1), _EVENT_INDEX_LIMIT - 1
    )


def _iso_utc(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _canonical_scval(segment: str) -> str:
    """Re-encode a base64 ScVal so equal values compare equal as strings."""
    return xdr.SCVal.from_xdr(segment).to_xdr()


@dataclass(frozen=True)
class _Event:
    toid: int
    index: int
    contract_id: str
    topic: tuple[str, ...]
    value: str
    tx_hash: str

    @property
    def ledger(self) -> int:
        return self.toid >> 32

    @property
    def id(self) -> str:
        return format_event_id(self.toid, self.index)


@dataclass(frozen=True)
class _TopicFilter:
    segments: tuple[str | None, ...]  # None is the `*` wildcard
    flexible: bool  # ended with `**`

    def matches(self, topic: tuple[str, ...]) -> bool:
        if len(topic) < len(self.segments) or (not self.flexible and len(topic) != len(self.segments)):
            return False
        return all(want is None or want == got for want, got in zip(self.segments, topic))


@dataclass(frozen=True)
class _EventFilter:
    matches_contract_type: bool
    contract_ids: frozenset[str]
    topics: tuple[_TopicFilter, ...]

    def matches(self, event: _Event) -> bool:
        if not self.matches_contract_type:
            return False
        if self.contract_ids and event.contract_id not in self.contract_ids:
            return False
        return not self.topics or any(t.matches(event.topic) for t in self.topics)


class DevnetLedger:
    """Chain state served by the devnet: ledger clock, ledger entries, contract events.

    Ledgers close lazily: `latest_ledger` is computed from the clock on each
    access. `ledger_close_seconds=math.inf` means ledgers close only through
    `close_ledger`, which makes tests deterministic; close times are then
    spaced `MANUAL_CLOSE_SPACING_S` apart.
    """

    def __init__(
        self,
        *,
        network_passphrase: str = STANDALONE_PASSPHRASE,
        start_ledger: int = 2_000_000,
        ledger_close_seconds: float = 5.0,
        retention_window: int = 120_960,
        clock: Callable[[], float] = time.time,
        protocol_version: int = 23,
        max_events_limit: int = MAX_EVENTS_LIMIT,
    ) -> None:
        """`max_events_limit`: the largest getEvents page this provider serves (real RPC: 10,000;
        some providers set less)."""
        if not ledger_close_seconds > 0:
            raise ValueError("ledger_close_seconds must be > 0; use math.inf to close ledgers only by hand")
        if not 1 <= start_ledger < _LEDGER_LIMIT:
            raise ValueError(f"start_ledger out of range: {start_ledger}")
        if retention_window < 1:
            raise ValueError(f"retention_window must be >= 1, got {retention_window}")
        self.lock = threading.RLock()
        self.network_passphrase = network_passphrase
        self.start_ledger = start_ledger
        self.ledger_close_seconds = ledger_close_seconds
        self.retention_window = retention_window
        self.protocol_version = protocol_version
        self.max_events_limit = max_events_limit
        self._clock = clock
        self._created_at = clock()
        self._clock_closes = 0
        self._manual_closes = 0
        self._entries: dict[str, EntryRecord] = {}
        self._event_keys: list[tuple[int, int]] = []
        self._events: list[_Event] = []
        self._next_event_index: dict[int, int] = {}
        self.request_counts: collections.Counter[str] = collections.Counter()
        self.bytes_sent = 0
        self._faults = FaultConfig()
        self._failure_rng = random.Random(0)
        self._methods: dict[str, Handler] = {
            "getHealth": self._rpc_get_health,
            "getNetwork": self._rpc_get_network,
            "getLatestLedger": self._rpc_get_latest_ledger,
            "getLedgerEntries": self._rpc_get_ledger_entries,
            "getEvents": self._rpc_get_events,
        }
        # Imported here: that module builds on this one (it reuses the ledger headers).
        from soroban_devnet.ledgers_method import get_ledgers

        self._methods["getLedgers"] = lambda params: get_ledgers(self, params)

    # -- ledger clock -------------------------------------------------------

    @property
    def manual_close_only(self) -> bool:
        return math.isinf(self.ledger_close_seconds)

    @property
    def _close_spacing(self) -> float:
        return MANUAL_CLOSE_SPACING_S if self.manual_close_only else self.ledger_close_seconds

    @property
    def latest_ledger(self) -> int:
        """Latest closed ledger; never moves backwards, even if the clock does."""
        with self.lock:
            if not self.manual_close_only:
                elapsed = self._clock() - self._created_at
                self._clock_closes = max(self._clock_closes, math.floor(elapsed / self.ledger_close_seconds))
            return self.start_ledger + self._clock_closes + self._manual_closes

    @property
    def oldest_ledger(self) -> int:
        return self._oldest_for(self.latest_ledger)

    def _oldest_for(self, latest: int) -> int:
        """Oldest retained ledger, from one reading of the clock so a response stays consistent."""
        return max(1, latest - self.retention_window + 1)

    def close_ledger(self, n: int = 1) -> int:
        """Close `n` ledgers now and return the new latest ledger."""
        if n < 0:
            raise ValueError(f"cannot close a negative number of ledgers: {n}")
        with self.lock:
            self._manual_closes += n
            return self.latest_ledger

    def ledger_close_time(self, seq: int) -> int:
        """Unix close time: `start_ledger` closed at creation, the others evenly spaced."""
        return math.floor(self._created_at + (seq - self.start_ledger) * self._close_spacing)

    def ledger_hash(self, seq: int) -> str:
        """Deterministic 64-hex stand-in for a ledger header hash."""
        return hashlib.sha256(f"{self.network_passphrase}|ledger|{seq}".encode()).hexdigest()

    # -- ledger entries -----------------------------------------------------

    def put_entry(
        self,
        key: xdr.LedgerKey,
        data: xdr.LedgerEntryData,
        *,
        last_modified: int | None = None,
        live_until: int | None = None,
    ) -> None:
        """Create or replace an entry; `last_modified` defaults to the latest ledger."""
        self.put_raw_entry(key.to_xdr(), data.to_xdr(), last_modified=last_modified, live_until=live_until)

    def put_raw_entry(
        self,
        key_b64: str,
        data_b64: str,
        *,
        last_modified: int | None = None,
        live_until: int | None = None,
    ) -> None:
        """Store already-encoded XDR unchecked, so bulk seeders skip re-encoding and
        tests can seed payloads that do not decode."""
        with self.lock:
            modified = self.latest_ledger if last_modified is None else last_modified
            self._entries[key_b64] = (data_b64, modified, live_until)

    def remove_entry(self, key_b64: str) -> bool:
        """Delete an entry; returns whether it existed."""
        with self.lock:
            return self._entries.pop(key_b64, None) is not None

    def get_entry(self, key_b64: str) -> EntryRecord | None:
        with self.lock:
            return self._entries.get(key_b64)

    @property
    def entry_count(self) -> int:
        with self.lock:
            return len(self._entries)

    # -- events -------------------------------------------------------------

    def add_event(
        self,
        *,
        contract_id: str,
        topic: Sequence[xdr.SCVal],
        value: xdr.SCVal,
        ledger: int | None = None,
        tx_hash: str | None = None,
        tx_index: int = 1,
        op_index: int = 0,
    ) -> str:
        """Record a contract event (in the latest ledger by default) and return its id."""
        if not StrKey.is_valid_contract(contract_id):
            raise ValueError(f"not a contract id: {contract_id!r}")
        if not 0 <= tx_index < _TX_INDEX_LIMIT or not 0 <= op_index < _OP_INDEX_LIMIT:
            raise ValueError(f"tx_index/op_index out of range: {tx_index}/{op_index}")
        with self.lock:
            seq = self.latest_ledger if ledger is None else ledger
            if not 1 <= seq < _LEDGER_LIMIT:
                raise ValueError(f"ledger out of range: {seq}")
            event_toid = toid(seq, tx_index, op_index)
            index = self._next_event_index.get(event_toid, 0)
            self._next_event_index[event_toid] = index + 1
            event = _Event(
                toid=event_toid,
                index=index,
                contract_id=contract_id,
                topic=tuple(segment.to_xdr() for segment in topic),
                value=value.to_xdr(),
                tx_hash=tx_hash or hashlib.sha256(f"devnet-tx|{seq}|{tx_index}".encode()).hexdigest(),
            )
            position = bisect.bisect_left(self._event_keys, (event_toid, index))
            self._event_keys.insert(position, (event_toid, index))
            self._events.insert(position, event)
            return event.id

    @property
    def event_count(self) -> int:
        with self.lock:
            return len(self._events)

    # -- counters and faults ------------------------------------------------

    def record_request(self, method: str) -> None:
        with self.lock:
            self.request_counts[method] += 1

    def record_response_bytes(self, n: int) -> None:
        with self.lock:
            self.bytes_sent += n

    def reset_counters(self) -> None:
        with self.lock:
            self.request_counts.clear()
            self.bytes_sent = 0

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        """Setting faults restarts the failure draw, so each configuration replays identically."""
        with self.lock:
            self._faults = config
            self._failure_rng = random.Random(config.failure_seed)

    def apply_faults(self, method: str, params: Any) -> None:
        """Sleep for the configured latency, then raise RpcError if this request must fail."""
        with self.lock:
            config = self._faults
            applies = config.applies_to(method)
            fail = applies and config.failure_rate > 0 and self._failure_rng.random() < config.failure_rate
        if applies and config.latency_s > 0:
            time.sleep(config.latency_s)
        if fail:
            raise RpcError(INTERNAL_ERROR, INJECTED_FAILURE_MESSAGE)
        if method == "getLedgerEntries" and config.poison_keys and isinstance(params, dict):
            keys = params.get("keys")
            if isinstance(keys, list) and any(isinstance(k, str) and k in config.poison_keys for k in keys):
                raise RpcError(INTERNAL_ERROR, f"{INJECTED_FAILURE_MESSAGE} (poisoned ledger key)")

    # -- method registry ----------------------------------------------------

    def register_method(self, name: str, handler: Handler) -> None:
        """Add or replace a JSON-RPC method; the handler runs with `lock` held."""
        with self.lock:
            self._methods[name] = handler

    def handler(self, name: str) -> Handler | None:
        """The handler registered for `name`, so an extension can wrap and delegate to it."""
        with self.lock:
            return self._methods.get(name)

    def dispatch(self, method: str, params: Any) -> dict[str, Any]:
        """Run one JSON-RPC method atomically against the current state."""
        with self.lock:
            handler = self._methods.get(method)
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, "method not found")
            return handler(params)

    # -- built-in methods ---------------------------------------------------

    def _rpc_get_health(self, _params: Any) -> dict[str, Any]:
        if self._faults.lagging:
            raise RpcError(INTERNAL_ERROR, "latency (63s) since last known ledger closed is too high (>30s)")
        latest = self.latest_ledger
        return {
            "status": "healthy",
            "latestLedger": latest,
            "oldestLedger": self._oldest_for(latest),
            "ledgerRetentionWindow": self.retention_window,
        }

    def _rpc_get_network(self, _params: Any) -> dict[str, Any]:
        return {"passphrase": self.network_passphrase, "protocolVersion": self.protocol_version}

    def _ledger_header(self, seq: int) -> xdr.LedgerHeader:
        """A real (synthetic) LedgerHeader so headerXdr decodes like the network's."""

        def h(label: str) -> xdr.Hash:
            return xdr.Hash(hashlib.sha256(f"{label}|{seq}".encode()).digest())

        return xdr.LedgerHeader(
            ledger_version=xdr.Uint32(self.protocol_version),
            previous_ledger_hash=xdr.Hash(bytes.fromhex(self.ledger_hash(seq - 1))),
            scp_value=xdr.StellarValue(
                tx_set_hash=h("tx-set"),
                close_time=xdr.TimePoint(xdr.Uint64(max(0, self.ledger_close_time(seq)))),
                upgrades=[],
                ext=xdr.StellarValueExt(xdr.StellarValueType.STELLAR_VALUE_BASIC),
            ),
            tx_set_result_hash=h("tx-set-result"),
            bucket_list_hash=h("bucket-list"),
            ledger_seq=xdr.Uint32(seq),
            total_coins=xdr.Int64(10**18),
            fee_pool=xdr.Int64(0),
            inflation_seq=xdr.Uint32(0),
            id_pool=xdr.Uint64(0),
            base_fee=xdr.Uint32(100),
            base_reserve=xdr.Uint32(5_000_000),
            max_tx_set_size=xdr.Uint32(100),
            skip_list=[xdr.Hash(bytes(32)) for _ in range(4)],
            ext=xdr.LedgerHeaderExt(0),
        )

    def _rpc_get_latest_ledger(self, _params: Any) -> dict[str, Any]:
        seq = self.latest_ledger
        header = self._ledger_header(seq)
        ledger_hash = self.ledger_hash(seq)
        # metadataXdr is a real LedgerCloseMeta, version 0 with an empty
        # transaction set (the network sends v1/v2, which carry the same header).
        meta = xdr.LedgerCloseMeta(
            v=0,
            v0=xdr.LedgerCloseMetaV0(
                ledger_header=xdr.LedgerHeaderHistoryEntry(
                    hash=xdr.Hash(bytes.fromhex(ledger_hash)),
                    header=header,
                    ext=xdr.LedgerHeaderHistoryEntryExt(0),
                ),
                tx_set=xdr.TransactionSet(previous_ledger_hash=header.previous_ledger_hash, txs=[]),
                tx_processing=[],
                upgrades_processing=[],
                scp_info=[],
            ),
        )
        return {
            "id": ledger_hash,
            "protocolVersion": self.protocol_version,
            "sequence": seq,
            "closeTime": str(self.ledger_close_time(seq)),
            "headerXdr": header.to_xdr(),
            "metadataXdr": meta.to_xdr(),
        }

    def _rpc_get_ledger_entries(self, params: Any) -> dict[str, Any]:
        if not isinstance(params, dict) or not isinstance(params.get("keys"), list):
            raise RpcError(INVALID_PARAMS, "params must be an object with a 'keys' array")
        keys: list[Any] = params["keys"]
        if len(keys) > MAX_LEDGER_ENTRY_KEYS:
            raise RpcError(
                INVALID_PARAMS, f"key count ({len(keys)}) exceeds maximum supported ({MAX_LEDGER_ENTRY_KEYS})"
            )
        for i, key in enumerate(keys):
            _check_ledger_key(key, i, stored=isinstance(key, str) and key in self._entries)
        entries: list[dict[str, Any]] = []
        for key in keys:
            record = self._entries.get(key)
            if record is None:
                continue
            data_b64, last_modified, live_until = record
            entry: dict[str, Any] = {"key": key, "xdr": data_b64, "lastModifiedLedgerSeq": last_modified}
            if live_until is not None:
                entry["liveUntilLedgerSeq"] = live_until
            entries.append(entry)
        return {"entries": entries, "latestLedger": self.latest_ledger}

    def _rpc_get_events(self, params: Any) -> dict[str, Any]:
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "params must be an object")
        start_ledger = _optional_uint32(params, "startLedger")
        end_ledger = _optional_uint32(params, "endLedger")
        cursor, limit = _parse_pagination(params.get("pagination"))
        if limit > self.max_events_limit:
            raise RpcError(INVALID_PARAMS, f"limit must not exceed {self.max_events_limit}")
        if cursor is not None:
            if start_ledger or end_ledger:
                raise RpcError(INVALID_PARAMS, "ledger ranges and cursor cannot both be set")
            cursor_toid, cursor_index = cursor
            scan_from, start_key = cursor_toid >> 32, (cursor_toid, cursor_index + 1)
        elif start_ledger:
            scan_from, start_key = start_ledger, (toid(start_ledger, 0, 0), 0)
        else:
            raise RpcError(INVALID_PARAMS, "startLedger must be positive")
        filters = _parse_filters(params.get("filters"))

        latest = self.latest_ledger
        oldest = self._oldest_for(latest)
        if not oldest <= scan_from <= latest:
            raise RpcError(
                INVALID_REQUEST,
                f"startLedger must be between the oldest ledger: {oldest} and the latest ledger: {latest} "
                "for this rpc instance.",
            )
        scan_end = min(scan_from + LEDGER_SCAN_LIMIT, latest + 1)
        if end_ledger:
            scan_end = min(scan_end, end_ledger)

        found: list[_Event] = []
        position = bisect.bisect_left(self._event_keys, start_key)
        stop = bisect.bisect_left(self._event_keys, (toid(scan_end, 0, 0), 0))
        while position < stop and len(found) < limit:
            event = self._events[position]
            if not filters or any(f.matches(event) for f in filters):
                found.append(event)
            position += 1

        next_cursor = found[-1].id if len(found) == limit else _window_end_cursor(scan_end - 1)
        return {
            "events": [self._event_json(event) for event in found],
            "cursor": next_cursor,
            "latestLedger": latest,
            "oldestLedger": oldest,
            "latestLedgerCloseTime": str(self.ledger_close_time(latest)),
            "oldestLedgerCloseTime": str(self.ledger_close_time(oldest)),
        }

    def _event_json(self, event: _Event) -> dict[str, Any]:
        return {
            "type": "contract",
            "ledger": event.ledger,
            "ledgerClosedAt": _iso_utc(self.ledger_close_time(event.ledger)),
            "contractId": event.contract_id,
            "id": event.id,
            "operationIndex": event.toid & (_OP_INDEX_LIMIT - 1),
            "transactionIndex": (event.toid >> 12) & (_TX_INDEX_LIMIT - 1),
            "txHash": event.tx_hash,
            "topic": list(event.topic),
            "value": event.value,
        }


def _check_ledger_key(key: Any, index: int, *, stored: bool) -> None:
    """Reject what real RPC rejects: non-LedgerKey payloads and TTL keys.

    Stored keys were encoded by whoever seeded them, so only their type is
    checked; unknown keys get a full XDR decode.
    """
    invalid = RpcError(INVALID_PARAMS, f"cannot unmarshal key value {key} at index {index}")
    if not isinstance(key, str):
        raise invalid
    try:
        raw = base64.b64decode(key, validate=True)
        if not stored:
            xdr.LedgerKey.from_xdr_bytes(raw)
    except (ValueError, EOFError) as exc:
        raise invalid from exc
    if raw[:4] == _TTL_KEY_TYPE.to_bytes(4, "big"):
        raise RpcError(INVALID_PARAMS, "ledger ttl entries cannot be queried directly")


def _optional_uint32(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _UINT32_LIMIT:
        raise RpcError(INVALID_PARAMS, f"{name} must be an unsigned 32-bit integer, got {value!r}")
    return value


def _parse_pagination(pagination: Any) -> tuple[tuple[int, int] | None, int]:
    """Returns (cursor as (toid, event index) or None, effective page limit)."""
    if pagination is None:
        return None, DEFAULT_EVENTS_LIMIT
    if not isinstance(pagination, dict):
        raise RpcError(INVALID_PARAMS, "pagination must be an object")
    raw_cursor = pagination.get("cursor")
    cursor = None
    if raw_cursor is not None:
        if not isinstance(raw_cursor, str):
            raise RpcError(INVALID_PARAMS, f"invalid cursor {raw_cursor!r}")
        try:
            cursor = parse_event_id(raw_cursor)
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, f"invalid cursor {raw_cursor!r}") from exc
    limit = _optional_uint32(pagination, "limit") or DEFAULT_EVENTS_LIMIT
    if limit > MAX_EVENTS_LIMIT:
        raise RpcError(INVALID_PARAMS, f"limit must not exceed {MAX_EVENTS_LIMIT}")
    return cursor, limit


def _parse_filters(filters: Any) -> list[_EventFilter]:
    if filters is None:
        return []
    if not isinstance(filters, list):
        raise RpcError(INVALID_PARAMS, "filters must be an array")
    if len(filters) > MAX_EVENT_FILTERS:
        raise RpcError(INVALID_PARAMS, f"maximum {MAX_EVENT_FILTERS} filters per request")
    parsed = []
    for i, raw in enumerate(filters, start=1):
        try:
            parsed.append(_parse_filter(raw))
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, f"filter {i} invalid: {exc}") from exc
    return parsed


def _parse_filter(raw: Any) -> _EventFilter:
    if not isinstance(raw, dict):
        raise ValueError("must be an object")
    event_type = raw.get("type") or ""
    if not isinstance(event_type, str):
        raise ValueError("type must be a string")
    types = {t for t in event_type.split(",") if t}
    if not types <= _EVENT_TYPES:
        raise ValueError("filter type invalid: if set, type must be either 'system', 'contract' or 'diagnostic'")
    contract_ids = raw.get("contractIds") or []
    if not isinstance(contract_ids, list):
        raise ValueError("contractIds must be an array")
    if len(contract_ids) > MAX_CONTRACT_IDS_PER_FILTER:
        raise ValueError(f"maximum {MAX_CONTRACT_IDS_PER_FILTER} contract IDs per filter")
    for i, contract_id in enumerate(contract_ids, start=1):
        if not isinstance(contract_id, str) or not StrKey.is_valid_contract(contract_id):
            raise ValueError(f"contract ID {i} invalid")
    topics = raw.get("topics") or []
    if not isinstance(topics, list):
        raise ValueError("topics must be an array")
    if len(topics) > MAX_TOPIC_FILTERS_PER_FILTER:
        raise ValueError(f"maximum {MAX_TOPIC_FILTERS_PER_FILTER} topics per filter")
    topic_filters = []
    for i, topic in enumerate(topics, start=1):
        try:
            topic_filters.append(_parse_topic_filter(topic))
        except ValueError as exc:
            raise ValueError(f"topic {i} invalid: {exc}") from exc
    return _EventFilter(
        matches_contract_type=not types or "contract" in types,
        contract_ids=frozenset(contract_ids),
        topics=tuple(topic_filters),
    )


def _parse_topic_filter(raw: Any) -> _TopicFilter:
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise ValueError("must be an array of strings")
    flexible = bool(raw) and raw[-1] == "**"
    segments = raw[:-1] if flexible else raw
    if not 1 <= len(segments) <= MAX_TOPIC_SEGMENTS:
        raise ValueError(f"topic must have 1 to {MAX_TOPIC_SEGMENTS} segments besides a trailing '**'")
    parsed: list[str | None] = []
    for i, segment in enumerate(segments, start=1):
        if segment == "*":
            parsed.append(None)
            continue
        if segment == "**":
            raise ValueError(f"segment {i} invalid: '**' is only allowed as the last segment")
        try:
            parsed.append(_canonical_scval(segment))
        except (ValueError, EOFError) as exc:
            raise ValueError(f"segment {i} invalid: not a base64 ScVal") from exc
    return _TopicFilter(segments=tuple(parsed), flexible=flexible)
