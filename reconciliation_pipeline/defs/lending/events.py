"""The lending contract's events (CONTRACTS.md §2): reading a window of them (from getEvents, or
replayed from getLedgers metadata beyond its window), decoding them strictly, and replacing
whole days of them in `recon.lending_events`.

An event that does not follow its layout is kept with its raw topic and value
and a `decode_error`, never dropped.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from stellar_sdk import scval, xdr
from stellar_sdk.soroban_rpc import EventInfo

from reconciliation_pipeline.chain.decode import DecodeError, as_address, as_i128, as_u64, as_unit_enum, symbol_text
from reconciliation_pipeline.chain.history import LedgerWindow
from reconciliation_pipeline.chain.reader import ChainReader
from reconciliation_pipeline.chain.replay import EVENTS_SOURCE, WindowEvents, read_events
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.json_text import to_json

LOAN_STATUSES = ("Active", "Repaid", "Defaulted", "Liquidated")
"""`LoanStatus` (CONTRACTS.md §2): the loan layout's status and the `loan_closed` event's value."""
LOAN_CREATED = "loan_created"
LOAN_REPAID = "loan_repaid"
LOAN_CLOSED = "loan_closed"
DEPOSIT = "deposit"
WITHDRAW = "withdraw"
EVENT_TYPES = (LOAN_CREATED, LOAN_REPAID, LOAN_CLOSED, DEPOSIT, WITHDRAW)
_SEGMENTS = {LOAN_CREATED: 3, LOAN_REPAID: 2, LOAN_CLOSED: 2, DEPOSIT: 2, WITHDRAW: 2}

EVENT_COLUMNS = (
    "event_id",
    "partition_key",
    "contract_id",
    "ledger",
    "ledger_closed_at",
    "tx_hash",
    "event_type",
    "loan_id",
    "address",
    "amount",
    "loan_status",
    "topic_xdr",
    "value_xdr",
    "decode_error",
)


def topic_filters(event_types: tuple[str, ...] = EVENT_TYPES) -> list[list[str]]:
    """One exact-length topic filter per event type (five fit in one getEvents filter)."""
    return [[scval.to_symbol(name).to_xdr(), *["*"] * (_SEGMENTS[name] - 1)] for name in event_types]


def _decode_fields(topic: list[xdr.SCVal], value: xdr.SCVal) -> dict[str, Any]:
    if not topic or topic[0].type != xdr.SCValType.SCV_SYMBOL:
        raise DecodeError("the first topic segment is not a symbol")
    name = symbol_text(topic[0], "event name")
    if name not in _SEGMENTS:
        raise DecodeError(f"unknown lending event {name!r}")
    if len(topic) != _SEGMENTS[name]:
        raise DecodeError(f"{name}: expected {_SEGMENTS[name]} topic segments, got {len(topic)}")
    fields: dict[str, Any] = {"event_type": name}
    if name == LOAN_CREATED:
        fields.update(loan_id=as_u64(topic[1], "loan_id"), address=as_address(topic[2], "borrower"),
                      amount=as_i128(value, "principal"))
    elif name == LOAN_REPAID:
        fields.update(loan_id=as_u64(topic[1], "loan_id"), amount=as_i128(value, "amount"))
    elif name == LOAN_CLOSED:
        fields.update(loan_id=as_u64(topic[1], "loan_id"), loan_status=as_unit_enum(value, LOAN_STATUSES, "status"))
    else:
        fields.update(address=as_address(topic[1], "provider"), amount=as_i128(value, "amount"))
    return fields


def decode_event(event: EventInfo) -> dict[str, Any]:
    """One event as a row of EVENT_COLUMNS; `decode_error` says why when it breaks its layout."""
    row: dict[str, Any] = dict.fromkeys(EVENT_COLUMNS)
    row["event_type"] = "unknown"
    closed_at = pd.Timestamp(event.ledger_close_at).tz_convert("UTC")
    row.update(
        event_id=event.id,
        partition_key=closed_at.strftime("%Y-%m-%d"),
        contract_id=event.contract_id,
        ledger=event.ledger,
        ledger_closed_at=closed_at.to_pydatetime(),
        tx_hash=event.transaction_hash,
        topic_xdr=list(event.topic),
        value_xdr=event.value,
    )
    try:
        topic = [xdr.SCVal.from_xdr(segment) for segment in event.topic]
        value = xdr.SCVal.from_xdr(event.value)
    except Exception as error:  # the XDR parser raises several unrelated types
        row.update(event_type="unknown", decode_error=f"not ScVal XDR: {error}")
        return row
    try:
        named = bool(topic) and topic[0].type == xdr.SCValType.SCV_SYMBOL
        row["event_type"] = symbol_text(topic[0], "event name") if named else "unknown"
        row.update(_decode_fields(topic, value))
    except DecodeError as error:
        row["decode_error"] = str(error)
    return row


def events_frame(events: list[EventInfo]) -> pd.DataFrame:
    """Decoded events (object dtype throughout: ids and amounts stay exact ints)."""
    return pd.DataFrame([decode_event(e) for e in events], columns=list(EVENT_COLUMNS), dtype=object)


def read_window_events(
    reader: ChainReader, contract_id: str, window: LedgerWindow, max_replay_ledgers: int,
    event_types: tuple[str, ...] = EVENT_TYPES,
) -> WindowEvents:
    """The contract's events of the given types in the window's ledgers: from getEvents (every cursor
    page followed) and, for ledgers before its window, replayed from getLedgers metadata."""
    if window.ledgers <= 0:
        return WindowEvents([], EVENTS_SOURCE, window.oldest_ledger)
    return read_events(reader, contract_ids=[contract_id], topics=topic_filters(event_types),
                       start_ledger=window.start_ledger, end_ledger=window.end_ledger,
                       max_replay_ledgers=max_replay_ledgers)


def _text(values: pd.Series) -> list[str | None]:
    return [None if v is None else str(v) for v in values]


def replace_event_partitions(engine: Engine, run_id: str, partition_keys: list[str], events: pd.DataFrame) -> None:
    """Replace the given days' rows with `events` in one transaction (a re-run changes nothing twice)."""
    with engine.begin() as connection:
        connection.execute(sql.query("recon/queries/lending_delete_events.sql"), {"partition_keys": partition_keys})
        if events.empty:
            return
        connection.execute(
            sql.query("recon/queries/lending_insert_events.sql"),
            {
                "run_id": run_id,
                "event_ids": list(events["event_id"]),
                "partition_keys": list(events["partition_key"]),
                "contract_ids": list(events["contract_id"]),
                "ledgers": [int(v) for v in events["ledger"]],
                "ledger_closed_ats": list(events["ledger_closed_at"]),
                "tx_hashes": list(events["tx_hash"]),
                "event_types": list(events["event_type"]),
                "loan_ids": _text(events["loan_id"]),
                "addresses": _text(events["address"]),
                "amounts": _text(events["amount"]),
                "loan_statuses": _text(events["loan_status"]),
                "topic_xdrs": [to_json(t) for t in events["topic_xdr"]],
                "value_xdrs": list(events["value_xdr"]),
                "decode_errors": _text(events["decode_error"]),
            },
        )


def created_loans(engine: Engine, loan_ids: list[int]) -> pd.DataFrame:
    """The indexed loan_created event of each loan: the transaction that created it and when."""
    with engine.connect() as connection:
        result = connection.execute(sql.query("recon/queries/lending_created_loans.sql"), {"loan_ids": loan_ids})
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)
    frame["loan_id"] = frame["loan_id"].map(int).astype(object)
    return frame


def indexed_creations(engine: Engine, tx_hashes: list[str]) -> pd.DataFrame:
    """Indexed loan_created events emitted by the given transactions."""
    with engine.connect() as connection:
        result = connection.execute(sql.query("recon/queries/lending_created_by_tx.sql"), {"tx_hashes": tx_hashes})
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)
