"""Keys and addresses named by contract events: chain-only discovery and change scans.

Contract storage cannot be enumerated, and most entries have no "changed"
flag: events are how the pipeline learns which keys exist on chain only and
which changed since a watermark. Events older than getEvents's window are
replayed from getLedgers metadata (`chain.replay.read_events`) when the RPC
serves those ledgers. Topic segments are read with the strict byte-level
parser; a segment that does not hold the expected type (or holds trailing
bytes) is unreadable, never guessed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from stellar_sdk import scval
from stellar_sdk.soroban_rpc import EventInfo

from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.chain.reader import ChainReader
from reconciliation_pipeline.chain.replay import EVENTS_SOURCE, WindowEvents, read_events
from reconciliation_pipeline.core.spec import KeyKind

NON_WALLET_ADDRESS_TYPES = frozenset({3, 4})
"""ScAddress claimable balance and liquidity pool (CAP-67): parties that are never a holder's wallet."""


@dataclass(frozen=True)
class NamedValues:
    values: frozenset[object]
    events: int
    unreadable: tuple[str, ...]
    """Ids of events a value could not be read from."""
    source: str = EVENTS_SOURCE
    """Where the events came from: getEvents, getLedgers (metadata replay) or both."""
    window: WindowEvents | None = None


def topic_filters(topics: Sequence[str], segments: int | None) -> list[list[str]]:
    """One topic filter per event name: exactly `segments` segments after it, or any (`**`)."""
    rest = ["**"] if segments is None else ["*"] * segments
    return [[scval.to_symbol(name).to_xdr(), *rest] for name in topics]


def _segment(encoded: str) -> tuple[int, object, int]:
    """(ScVal type, value, ScAddress type or -1) of one topic segment; raises `XdrError`."""
    raw = base64.b64decode(encoded, validate=True)
    (kind, value), end = fastxdr.read_scval(raw)
    if end != len(raw):
        raise fastxdr.XdrError(f"{len(raw) - end} trailing bytes after the topic segment")
    address_type = int.from_bytes(raw[4:8], "big") if kind == fastxdr.SCV_ADDRESS else -1
    return kind, value, address_type


def _value(encoded: str, kind: KeyKind) -> object:
    tag, value, _ = _segment(encoded)
    expected = fastxdr.SCV_U64 if kind is KeyKind.U64 else fastxdr.SCV_ADDRESS
    if tag != expected:
        raise fastxdr.XdrError(f"expected ScVal type {expected}, got {tag}")
    return value if kind is KeyKind.U64 else str(value)


def _addresses(topic: Sequence[str]) -> list[str]:
    """Every wallet address among an event's segments after its name (CAP-67 movements)."""
    found = []
    for encoded in topic[1:]:
        tag, value, address_type = _segment(encoded)
        if tag == fastxdr.SCV_ADDRESS and address_type not in NON_WALLET_ADDRESS_TYPES:
            found.append(str(value))
    return found


def named_values(events: Sequence[EventInfo], kind: KeyKind, segments: tuple[int, ...] | None) -> NamedValues:
    """The values `segments` of each event hold (every address segment when None)."""
    values: set[object] = set()
    unreadable: list[str] = []
    for event in events:
        try:
            if segments is None:
                values.update(_addresses(event.topic))
            else:
                values.update(_value(event.topic[i], kind) for i in segments)
        except (fastxdr.XdrError, ValueError, IndexError):
            unreadable.append(event.id)
    return NamedValues(frozenset(values), len(events), tuple(unreadable))


def read_named(
    reader: ChainReader,
    contract_id: str,
    topics: Sequence[str],
    kind: KeyKind,
    segments: tuple[int, ...] | None,
    *,
    start_ledger: int | None = None,
    end_ledger: int | None = None,
    closed_before: datetime | None = None,
    max_replay_ledgers: int = 0,
) -> NamedValues:
    """Values named by the contract's events in `[start_ledger, end_ledger)` (getEvents's whole
    window by default), keeping only events that closed before `closed_before` when given. Up to
    `max_replay_ledgers` ledgers before getEvents's window are replayed from getLedgers metadata;
    a range beyond raises `RetentionWindowError`."""
    count = None if segments is None else max(segments)
    window = read_events(reader, contract_ids=[contract_id], topics=topic_filters(topics, count),
                         start_ledger=start_ledger, end_ledger=end_ledger, max_replay_ledgers=max_replay_ledgers)
    events = window.events
    if closed_before is not None:
        events = [e for e in events if e.ledger_close_at.astimezone(UTC) < closed_before]
    return replace(named_values(events, kind, segments), source=window.source, window=window)
