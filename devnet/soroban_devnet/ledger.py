"""In-memory chain state behind the local Soroban JSON-RPC devnet.

The devnet lets the pipeline's chain readers run against something that speaks
the real wire format (STELLAR.md, "JSON-RPC wire format") without a network:
ledger entries and contract events are seeded by hand, ledgers close on a
clock, and faults (latency, failures, poisoned keys) can be injected to test
the readers' retry and isolation logic.

`DevnetLedger` holds the state and the JSON-RPC method handlers; the HTTP
transport lives in `server.py`. All state is guarded by one re-entrant lock so
the threaded HTTP server, seeders and tests can share one instance.

Every write is a transaction in the ledger it lands in (`history.py`):
`getLedgers` serves each ledger's real `LedgerCloseMeta`, with the changes and
events of its transactions and a header hash chain. Persistent contract data
has a TTL: an entry past it is expired, and some ledgers later archived (evicted
to the hot archive), which `getLedgerEntries` shows the way a real RPC does
(`liveUntilLedgerSeq` behind the latest ledger, then the placeholder 0).
"""

from __future__ import annotations

import base64
import bisect
import collections
import contextlib
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stellar_sdk import StrKey, xdr

from soroban_devnet import history
from soroban_devnet.history import AppliedTransaction

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

DEFAULT_PERSISTENT_TTL = 2_073_600
"""Ledgers a new persistent entry lives before its TTL runs out (about 120 days), unless a write says."""
DEFAULT_EVICTION_DELAY = 16
"""Ledgers an expired entry stays in the live state before it is evicted to the archive."""
_DEFAULT = object()
"""`put_raw_entry`'s default TTL: the persistent default for contract data, none for classic entries."""

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
    """Faults the devnet injects around handling a request.

    Latency and the failure draw apply only to `methods` (all when None);
    poisoned keys fail any getLedgerEntries request that contains one of them.
    """

    latency_s: float = 0.0
    failure_rate: float = 0.0
    failure_seed: int = 0
    methods: frozenset[str] | None = None
    poison_keys: frozenset[str] = frozenset()
    broken_ledgers: frozenset[int] = frozenset()
    """Ledgers `getLedgers` serves with a forged `previousLedgerHash` (a broken hash chain)."""
    missing_ledgers: frozenset[int] = frozenset()
    """Ledgers `getLedgers` leaves out of its pages (a gap)."""
    garbled_ledgers: frozenset[int] = frozenset()
    """Ledgers `getLedgers` serves with metadata cut short (it does not parse)."""
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
    """Chain state served by the devnet: ledger clock, ledger entries, contract events, history.

    Ledgers close lazily: `latest_ledger` is computed from the clock on each
    access. `ledger_close_seconds=math.inf` means ledgers close only through
    `close_ledger`, which makes tests deterministic; close times are then
    spaced `MANUAL_CLOSE_SPACING_S` apart.

    `retention_window` is what the RPC's own database keeps (events,
    transactions, `getHealth`); `ledger_retention_window` (default: the same)
    is how far back `getLedgers` serves, as an RPC backed by a ledger data
    store does (`SERVE_LEDGERS_FROM_DATASTORE`): longer, while `getLedgers`
    still reports the local window as its `oldestLedger`.
    """

    def __init__(
        self,
        *,
        network_passphrase: str = STANDALONE_PASSPHRASE,
        start_ledger: int = 2_000_000,
        ledger_close_seconds: float = 5.0,
        retention_window: int = 120_960,
        ledger_retention_window: int | None = None,
        clock: Callable[[], float] = time.time,
        protocol_version: int = 23,
        record_history: bool = True,
        persistent_ttl: int = DEFAULT_PERSISTENT_TTL,
        eviction_delay: int = DEFAULT_EVICTION_DELAY,
        max_events_limit: int = MAX_EVENTS_LIMIT,
    ) -> None:
        """`max_events_limit`: the largest getEvents page this provider serves (real RPC: 10,000;
        some providers set less)."""
        if not ledger_close_seconds > 0:
            raise ValueError("ledger_close_seconds must be > 0; use math.inf to close ledgers only by hand")
        if not 1 <= start_ledger < _LEDGER_LIMIT:
            raise ValueError(f"start_ledger out of range: {start_ledger}")
        if retention_window < 1 or (ledger_retention_window is not None and ledger_retention_window < 1):
            raise ValueError(f"retention windows must be >= 1, got {retention_window}/{ledger_retention_window}")
        self.lock = threading.RLock()
        self.network_passphrase = network_passphrase
        self.start_ledger = start_ledger
        self.ledger_close_seconds = ledger_close_seconds
        self.retention_window = retention_window
        self.ledger_retention_window = ledger_retention_window or retention_window
        self.protocol_version = protocol_version
        self.record_history = record_history
        self.persistent_ttl = persistent_ttl
        self.eviction_delay = eviction_delay
        self.max_events_limit = max_events_limit
        self._clock = clock
        self._created_at = clock()
        self._clock_closes = 0
        self._manual_closes = 0
        self._entries: dict[str, EntryRecord] = {}
        self._event_keys: list[tuple[int, int]] = []
        self._events: list[_Event] = []
        self._next_event_index: dict[int, int] = {}
        self._history: dict[int, list[AppliedTransaction]] = {}
        self._history_version: collections.Counter[int] = collections.Counter()
        self._open: tuple[int, AppliedTransaction] | None = None
        self._evictions: dict[int, set[str]] = collections.defaultdict(set)
        # The hash chain starts below the oldest ledger any window can reach and grows as ledgers close.
        self._chain_base = max(1, start_ledger - max(self.retention_window, self.ledger_retention_window))
        self._chain: list[bytes] = []
        self._meta_cache: dict[int, tuple[int, bytes, str]] = {}
        """Per ledger: (history version, LedgerCloseMeta XDR, its base64), built once per change."""
        self.request_counts: collections.Counter[str] = collections.Counter()
        self.peak_in_flight: collections.Counter[str] = collections.Counter()
        """Per method, the most requests that waited out the injected latency at once: how many a
        client had in flight (measured only where latency is injected)."""
        self._waiting: collections.Counter[str] = collections.Counter()
        self.ledgers_requested: collections.Counter[int] = collections.Counter()
        """getLedgers requests by the first ledger they asked for."""
        self.bytes_sent = 0
        self._faults = FaultConfig()
        self._draws: collections.Counter[bytes] = collections.Counter()
        """Per request (a digest of its method and params), how many failure draws it has had."""
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

    def oldest_served_ledger(self, latest: int) -> int:
        """The oldest ledger `getLedgers` serves (the ledger retention, within the hash chain)."""
        return max(self._chain_base, latest - self.ledger_retention_window + 1)

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

    def ledger_closed_by(self, unix_seconds: float) -> int:
        """The last ledger that closed at or before a moment (close times are evenly spaced)."""
        return self.start_ledger + math.floor((unix_seconds - self._created_at) / self._close_spacing)

    def _previous_hash(self, seq: int) -> bytes:
        """The hash of ledger `seq - 1` (below the chain's base: a fixed genesis hash)."""
        if seq - 1 < self._chain_base:
            return hashlib.sha256(f"{self.network_passphrase}|genesis".encode()).digest()
        return self._hash(seq - 1)

    def _hash(self, seq: int) -> bytes:
        if seq < self._chain_base:
            raise ValueError(f"ledger {seq} is below the devnet's history (it starts at {self._chain_base})")
        with self.lock:
            chain = self._chain
            if len(chain) <= seq - self._chain_base:
                # One tight loop: the whole retention window's chain is built on the first request.
                pack, sha256 = history.header_packer(self.protocol_version), hashlib.sha256
                previous = chain[-1] if chain else self._previous_hash(self._chain_base)
                spacing, created = self._close_spacing, self._created_at
                for n in range(self._chain_base + len(chain), seq + 1):
                    previous = sha256(pack(n, previous, max(0, math.floor(created + (n - self.start_ledger)
                                                                          * spacing)))).digest()
                    chain.append(previous)
            return chain[seq - self._chain_base]

    def ledger_header(self, seq: int, previous_hash: bytes | None = None) -> bytes:
        """The ledger's `LedgerHeader` XDR (its previous hash from the chain unless given)."""
        previous = self._previous_hash(seq) if previous_hash is None else previous_hash
        return history.header_packer(self.protocol_version)(seq, previous, max(0, self.ledger_close_time(seq)))

    def ledger_hash(self, seq: int) -> str:
        """The ledger's hash: the SHA-256 of its header, which names the hash of the ledger before."""
        return self._hash(seq).hex()

    # -- history --------------------------------------------------------------

    @property
    def meta_version(self) -> int:
        """LedgerCloseMeta v2 with TransactionMeta v4 from protocol 23; v1 with v3 before."""
        return 2 if self.protocol_version >= 23 else 1

    def _transactions(self, seq: int) -> list[AppliedTransaction]:
        self._history_version[seq] += 1
        return self._history.setdefault(seq, [])

    def _tx(self, seq: int, tx_hash: str | None, tx_index: int | None) -> tuple[int, AppliedTransaction]:
        """The transaction (1-based index, record) a write or event belongs to: the open one, the one
        with this index or hash in the ledger, or a new one at the end."""
        txs = self._transactions(seq)
        if self._open is not None and self._open[0] == seq:
            return next(i for i, t in enumerate(txs, start=1) if t is self._open[1]), self._open[1]
        if tx_index is not None:
            while len(txs) < tx_index:
                txs.append(AppliedTransaction(tx_hash=hashlib.sha256(f"devnet-tx|{seq}|{len(txs) + 1}".encode())
                                              .hexdigest()))
            if tx_hash is not None and txs[tx_index - 1].tx_hash != tx_hash and not txs[tx_index - 1].operations:
                txs[tx_index - 1].tx_hash = tx_hash
            return tx_index, txs[tx_index - 1]
        if tx_hash is not None:
            for index, tx in enumerate(txs, start=1):
                if tx.tx_hash == tx_hash:
                    return index, tx
        tx = AppliedTransaction(tx_hash=tx_hash or hashlib.sha256(f"devnet-tx|{seq}|{len(txs) + 1}".encode())
                                .hexdigest())
        txs.append(tx)
        return len(txs), tx

    @contextlib.contextmanager
    def transaction(self, *, ledger: int | None = None, tx_hash: str | None = None, successful: bool = True,
                    contract_id: str | None = None) -> Iterator[AppliedTransaction]:
        """Group the writes and events made inside into one transaction of `ledger` (the latest by
        default): entries written inside are last modified in that ledger."""
        with self.lock:
            seq = self.latest_ledger if ledger is None else ledger
            if not self.record_history:  # bulk seeding: state and events only
                tx = AppliedTransaction(tx_hash=tx_hash or "")
                previous, self._open = self._open, (seq, tx)
                try:
                    yield tx
                finally:
                    self._open = previous
                return
            _, tx = self._tx(seq, tx_hash, None)
            tx.successful = successful
            if contract_id is not None:
                tx.operation(0).contract = StrKey.decode_contract(contract_id)
            previous, self._open = self._open, (seq, tx)
            try:
                yield tx
            finally:
                self._open = previous
                self._history_version[seq] += 1

    def record_raw_transaction(self, seq: int, tx_hash: str, envelope: bytes, result: bytes, meta: bytes) -> None:
        """A transaction given as its XDR (traffic the devnet did not apply itself, e.g. a benchmark's
        public-network-shaped ledgers): served in its ledger's metadata, not applied to the state."""
        with self.lock:
            self._transactions(seq).append(AppliedTransaction(tx_hash=tx_hash, raw=(envelope, result, meta)))

    def transaction_index(self, seq: int, tx: AppliedTransaction) -> int:
        """The 1-based position of a transaction in its ledger (its application order)."""
        with self.lock:
            return next(i for i, t in enumerate(self._history.get(seq, []), start=1) if t is tx)

    def transactions_in(self, seq: int) -> list[AppliedTransaction]:
        with self.lock:
            return list(self._history.get(seq, []))

    def ledger_close_meta(self, seq: int) -> bytes:
        """The ledger's `LedgerCloseMeta` XDR (built once per change of its history)."""
        return self._cached_meta(seq)[1]

    def ledger_close_meta_b64(self, seq: int) -> str:
        """The same, base64-encoded as getLedgers serves it (encoded once)."""
        return self._cached_meta(seq)[2]

    def _cached_meta(self, seq: int) -> tuple[int, bytes, str]:
        with self.lock:
            version = self._history_version[seq]
            cached = self._meta_cache.get(seq)
            if cached is not None and cached[0] == version:
                return cached
            transactions = []
            for tx in self._history.get(seq, []):
                envelope, result, meta = history.transaction_parts(tx, seq, 4 if self.meta_version == 2 else 3)
                transactions.append((tx.tx_hash, envelope, result, meta))
            evicted = [history.unb64(k) for k in sorted(self._evictions.get(seq, ()))
                       if self._is_evicted_at(k, seq)]
            evicted += [history.ttl_key(k) for k in evicted]
            meta_bytes = history.ledger_close_meta(
                self.meta_version, self._hash(seq), self.ledger_header(seq), self._previous_hash(seq), transactions,
                evicted)
            built = (version, meta_bytes, history.b64(meta_bytes))
            self._meta_cache[seq] = built
            return built

    # -- ledger entries -----------------------------------------------------

    def put_entry(
        self,
        key: xdr.LedgerKey,
        data: xdr.LedgerEntryData,
        *,
        last_modified: int | None = None,
        live_until: Any = _DEFAULT,
    ) -> None:
        """Create or replace an entry; `last_modified` defaults to the latest ledger."""
        self.put_raw_entry(key.to_xdr(), data.to_xdr(), last_modified=last_modified, live_until=live_until)

    def put_raw_entry(
        self,
        key_b64: str,
        data_b64: str,
        *,
        last_modified: int | None = None,
        live_until: Any = _DEFAULT,
        tx_hash: str | None = None,
    ) -> None:
        """Store already-encoded XDR unchecked, so bulk seeders skip re-encoding and tests can seed
        payloads that do not decode. The write is a transaction of its ledger (the open one inside
        `transaction`). A contract-data entry keeps its TTL, or gets the persistent default when new;
        `live_until=None` stores none."""
        with self.lock:
            if self._open is not None and last_modified is None:
                modified = self._open[0]
            else:
                modified = self.latest_ledger if last_modified is None else last_modified
            before = self._entries.get(key_b64)
            if live_until is _DEFAULT:
                if before is not None and before[2] is not None:
                    live_until = before[2]
                elif history.is_contract_data(history.unb64(key_b64)):
                    live_until = modified + self.persistent_ttl
                else:
                    live_until = None
            self._entries[key_b64] = (data_b64, modified, live_until)
            self._schedule_eviction(key_b64, before[2] if before is not None else None, live_until)
            if self.record_history:
                _, tx = self._tx(modified, tx_hash, None)
                raw_key = history.unb64(key_b64)
                tx.write(raw_key, history.unb64(data_b64), modified,
                         None if before is None else (history.unb64(before[0]), before[1]), live_until,
                         None if before is None else before[2])
                if tx.operation(0).contract is None and history.is_contract_data(raw_key) and raw_key[4:8] == b"\0\0\0\1":
                    tx.operation(0).contract = raw_key[8:40]

    def remove_entry(self, key_b64: str) -> bool:
        """Delete an entry; returns whether it existed."""
        with self.lock:
            before = self._entries.pop(key_b64, None)
            if before is None:
                return False
            self._schedule_eviction(key_b64, before[2], None)
            if self.record_history:
                _, tx = self._tx(self._open[0] if self._open is not None else self.latest_ledger, None, None)
                tx.remove(history.unb64(key_b64), (history.unb64(before[0]), before[1]), before[2] is not None)
            return True

    def extend_ttl(self, key_b64: str, live_until: int) -> None:
        """Extend (or set) an entry's TTL in a transaction of the latest ledger; a restore when the
        entry was archived."""
        with self.lock:
            data_b64, last_modified, old = self._entries[key_b64]
            seq = self._open[0] if self._open is not None else self.latest_ledger
            archived = old is not None and self._is_evicted(old, seq)
            self._entries[key_b64] = (data_b64, seq if archived else last_modified, live_until)
            self._schedule_eviction(key_b64, old, live_until)
            if self.record_history:
                _, tx = self._tx(seq, None, None)
                raw_key = history.unb64(key_b64)
                if archived:
                    tx.restore(raw_key, history.unb64(data_b64), seq, live_until)
                else:
                    tx.extend(raw_key, seq, old, live_until)

    def get_entry(self, key_b64: str) -> EntryRecord | None:
        with self.lock:
            return self._entries.get(key_b64)

    @property
    def entry_count(self) -> int:
        with self.lock:
            return len(self._entries)

    def _is_evicted(self, live_until: int, latest: int) -> bool:
        """An expired entry is evicted to the archive `eviction_delay` ledgers after its TTL ran out."""
        return latest > live_until + self.eviction_delay

    def _is_evicted_at(self, key_b64: str, seq: int) -> bool:
        record = self._entries.get(key_b64)
        return record is not None and record[2] is not None and record[2] + self.eviction_delay + 1 == seq

    def _schedule_eviction(self, key_b64: str, old: int | None, new: int | None) -> None:
        if old is not None:
            self._evictions[old + self.eviction_delay + 1].discard(key_b64)
        if new is not None and history.is_contract_data(history.unb64(key_b64)):
            self._evictions[new + self.eviction_delay + 1].add(key_b64)
            self._history_version[new + self.eviction_delay + 1] += 1

    # -- events -------------------------------------------------------------

    def add_event(
        self,
        *,
        contract_id: str,
        topic: Sequence[xdr.SCVal],
        value: xdr.SCVal,
        ledger: int | None = None,
        tx_hash: str | None = None,
        tx_index: int | None = None,
        op_index: int = 0,
    ) -> str:
        """Record a contract event (in the latest ledger by default) and return its id.

        It belongs to the open transaction, the ledger's transaction at `tx_index` (1-based; 0 is
        an event of the ledger itself, before every transaction, kept out of its history), the one
        with `tx_hash`, or, with neither, the ledger's first transaction. Its position gives the
        event its id, as the RPC's TOID does.
        """
        if not StrKey.is_valid_contract(contract_id):
            raise ValueError(f"not a contract id: {contract_id!r}")
        if (tx_index is not None and not 0 <= tx_index < _TX_INDEX_LIMIT) or not 0 <= op_index < _OP_INDEX_LIMIT:
            raise ValueError(f"tx_index/op_index out of range: {tx_index}/{op_index}")
        with self.lock:
            seq = self.latest_ledger if ledger is None else ledger
            if not 1 <= seq < _LEDGER_LIMIT:
                raise ValueError(f"ledger out of range: {seq}")
            if tx_index == 0 or not self.record_history:
                index, tx = (1 if tx_index is None else tx_index), None
            else:
                opened = self._open is not None and self._open[0] == seq
                index, tx = self._tx(seq, tx_hash, 1 if tx_index is None and tx_hash is None and not opened
                                     else tx_index)
            event_toid = toid(seq, index, op_index)
            event_index = self._next_event_index.get(event_toid, 0)
            self._next_event_index[event_toid] = event_index + 1
            topics = tuple(segment.to_xdr() for segment in topic)
            hash_ = tx.tx_hash if tx is not None else (
                tx_hash or hashlib.sha256(f"devnet-tx|{seq}|0".encode()).hexdigest())
            event = _Event(toid=event_toid, index=event_index, contract_id=contract_id, topic=topics,
                           value=value.to_xdr(), tx_hash=hash_)
            if tx is not None and tx.raw is None:
                op = tx.operation(op_index)
                contract_raw = StrKey.decode_contract(contract_id)
                op.contract = op.contract or contract_raw
                op.events.append(history.contract_event(contract_raw, [history.unb64(t) for t in topics],
                                                        history.unb64(event.value)))
            position = bisect.bisect_left(self._event_keys, (event_toid, event_index))
            self._event_keys.insert(position, (event_toid, event_index))
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
            self.peak_in_flight.clear()
            self.ledgers_requested.clear()
            self.bytes_sent = 0

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        """Setting faults restarts the failure draw, so each configuration replays identically."""
        with self.lock:
            self._faults = config
            self._draws.clear()

    def _failure_draw(self, method: str, params: Any) -> float:
        """A number in [0, 1) fixed by the seed, the request and how many times the same request
        was drawn for before (a retry draws anew).

        Not one random sequence in arrival order: concurrent readers (threads, sweep workers)
        send their batches in an order that varies from run to run, and which batch fails must not.
        """
        request = hashlib.blake2b(json.dumps([method, params], sort_keys=True).encode(), digest_size=16).digest()
        occurrence = self._draws[request]
        self._draws[request] += 1
        draw = hashlib.blake2b(request + occurrence.to_bytes(8, "big"), digest_size=8,
                               key=self._faults.failure_seed.to_bytes(8, "big", signed=True))
        return int.from_bytes(draw.digest(), "big") / 2**64

    @contextlib.contextmanager
    def injecting_faults(self, method: str, params: Any) -> Iterator[None]:
        """Inject the configured faults around handling one request: the answer (its result or
        its error) comes no sooner than `latency_s` after the request arrived, and a drawn failure
        or a poisoned key is an error instead of the result.

        The devnet's own work happens within the latency, as a provider's latency includes its
        own: added on top, it made a request take 21-24 ms at 20 ms of latency (1 ms of the
        devnet's CPU, then a wait for the lock every handler takes)."""
        arrived = time.monotonic()
        with self.lock:
            config = self._faults
            applies = config.applies_to(method)
            fail = applies and config.failure_rate > 0 and self._failure_draw(method, params) < config.failure_rate
        waits = applies and config.latency_s > 0
        if waits:
            with self.lock:
                self._waiting[method] += 1
                self.peak_in_flight[method] = max(self.peak_in_flight[method], self._waiting[method])
        try:
            if fail:
                raise RpcError(INTERNAL_ERROR, INJECTED_FAILURE_MESSAGE)
            if method == "getLedgerEntries" and config.poison_keys and isinstance(params, dict):
                keys = params.get("keys")
                if isinstance(keys, list) and any(isinstance(k, str) and k in config.poison_keys for k in keys):
                    raise RpcError(INTERNAL_ERROR, f"{INJECTED_FAILURE_MESSAGE} (poisoned ledger key)")
            yield
        finally:
            if waits:
                time.sleep(max(0.0, config.latency_s - (time.monotonic() - arrived)))
                with self.lock:
                    self._waiting[method] -= 1

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

    def _rpc_get_latest_ledger(self, _params: Any) -> dict[str, Any]:
        seq = self.latest_ledger
        return {
            "id": self.ledger_hash(seq),
            "protocolVersion": self.protocol_version,
            "sequence": seq,
            "closeTime": str(self.ledger_close_time(seq)),
            "headerXdr": history.b64(self.ledger_header(seq)),
            "metadataXdr": history.b64(self.ledger_close_meta(seq)),
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
        latest = self.latest_ledger
        for key in keys:
            record = self._entries.get(key)
            if record is None:
                continue
            data_b64, last_modified, live_until = record
            entry: dict[str, Any] = {"key": key, "xdr": data_b64, "lastModifiedLedgerSeq": last_modified}
            if live_until is not None:
                # An archived entry comes from the hot archive, whose TTL core does not keep: 0.
                entry["liveUntilLedgerSeq"] = 0 if self._is_evicted(live_until, latest) else live_until
            entries.append(entry)
        return {"entries": entries, "latestLedger": latest}

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
    if not isinstance(key, str):
        raise _undecodable_key(key, index)
    try:
        raw = base64.b64decode(key, validate=True)
        if not stored:
            xdr.LedgerKey.from_xdr_bytes(raw)
    except (ValueError, EOFError) as exc:
        raise _undecodable_key(key, index) from exc
    if raw[:4] == _TTL_KEY_TYPE.to_bytes(4, "big"):
        raise RpcError(INVALID_PARAMS, "ledger ttl entries cannot be queried directly")


def _undecodable_key(key: Any, index: int) -> RpcError:
    return RpcError(INVALID_PARAMS, f"cannot unmarshal key value {key} at index {index}")


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
