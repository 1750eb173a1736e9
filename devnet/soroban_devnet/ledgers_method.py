"""`getLedgers` for the devnet, as stellar-rpc serves it.

Each ledger comes with its real `LedgerCloseMeta` (`DevnetLedger.ledger_close_meta`):
its transactions' results, entry changes and events, and a header whose hash
chain links it to the ledger before. Response shape: `ledgers[{hash, sequence,
ledgerCloseTime (string), headerXdr (LedgerHeaderHistoryEntry), metadataXdr
(LedgerCloseMeta)}]`, `latestLedger`, `latestLedgerCloseTime`, `oldestLedger`,
`oldestLedgerCloseTime`, `cursor` (the last sequence returned, as a string).

As an RPC serving ledgers from a data store does, it serves ledgers back to
`ledger_retention_window` while reporting its local window as `oldestLedger`.
The faults `broken_ledgers` (a forged `previousLedgerHash`), `missing_ledgers`
(left out of the page) and `garbled_ledgers` (metadata cut short) stand for a
corrupt or incomplete data store.
"""

from __future__ import annotations

import hashlib
from typing import Any

from soroban_devnet import history
from soroban_devnet.ledger import INVALID_PARAMS, INVALID_REQUEST, DevnetLedger, RpcError

DEFAULT_LEDGERS_LIMIT = 50
MAX_LEDGERS_LIMIT = 200


def _uint(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RpcError(INVALID_PARAMS, f"{name} must be a non-negative integer, got {value!r}")
    return value


def _ledger_info(ledger: DevnetLedger, sequence: int) -> dict[str, Any]:
    faults = ledger.faults
    if sequence in faults.broken_ledgers:
        forged = hashlib.sha256(b"forged|" + str(sequence).encode()).digest()
        header = ledger.ledger_header(sequence, previous_hash=forged)
        ledger_hash = hashlib.sha256(header).digest()
        metadata = history.b64(history.ledger_close_meta(ledger.meta_version, ledger_hash, header, forged, [], []))
    else:
        header = ledger.ledger_header(sequence)
        ledger_hash = bytes.fromhex(ledger.ledger_hash(sequence))
        if sequence in faults.garbled_ledgers:
            full = ledger.ledger_close_meta(sequence)
            metadata = history.b64(full[: len(full) // 2])
        else:
            metadata = ledger.ledger_close_meta_b64(sequence)
    return {
        "hash": ledger_hash.hex(),
        "sequence": sequence,
        "ledgerCloseTime": str(ledger.ledger_close_time(sequence)),
        "headerXdr": history.b64(ledger_hash + header + b"\0\0\0\0"),
        "metadataXdr": metadata,
    }


def get_ledgers(ledger: DevnetLedger, params: Any) -> dict[str, Any]:
    """One page of ledgers from `startLedger` (or after `pagination.cursor`)."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "params must be an object")
    pagination = params.get("pagination") or {}
    if not isinstance(pagination, dict):
        raise RpcError(INVALID_PARAMS, "pagination must be an object")
    limit = DEFAULT_LEDGERS_LIMIT if pagination.get("limit") is None else _uint(pagination["limit"], "limit")
    if not 1 <= limit <= MAX_LEDGERS_LIMIT:
        raise RpcError(INVALID_PARAMS, f"limit must be between 1 and {MAX_LEDGERS_LIMIT}")
    cursor, start = pagination.get("cursor"), params.get("startLedger")
    latest = ledger.latest_ledger
    oldest = ledger.oldest_ledger
    served = ledger.oldest_served_ledger(latest)
    if cursor is not None:
        if start:
            raise RpcError(INVALID_PARAMS, "startLedger and cursor cannot both be set")
        try:
            first = int(cursor) + 1
        except (TypeError, ValueError) as exc:
            raise RpcError(INVALID_PARAMS, f"invalid cursor {cursor!r}") from exc
    else:
        first = _uint(start, "startLedger") if start is not None else 0
        if not served <= first <= latest:
            raise RpcError(
                INVALID_REQUEST,
                f"start ledger must be between the oldest ledger: {served} and the latest ledger: {latest} "
                "for this rpc instance.",
            )
    ledger.ledgers_requested[first] += 1
    last = min(first + limit - 1, latest)
    missing = ledger.faults.missing_ledgers
    ledgers = [_ledger_info(ledger, sequence) for sequence in range(max(first, served), last + 1)
               if sequence not in missing]
    return {
        "ledgers": ledgers,
        "latestLedger": latest,
        "latestLedgerCloseTime": str(ledger.ledger_close_time(latest)),
        "oldestLedger": oldest,
        "oldestLedgerCloseTime": str(ledger.ledger_close_time(oldest)),
        "cursor": str(last) if last >= first else str(first - 1),
    }


def register_get_ledgers(ledger: DevnetLedger) -> None:
    """Serve `getLedgers` from this ledger."""
    ledger.register_method("getLedgers", lambda params: get_ledgers(ledger, params))
