"""`getLedgers` for the devnet, as stellar-rpc serves it.

The lending event indexer maps a UTC day to its ledgers by close time; on a
real network that is `getLedgers`. Response shape: `ledgers[{hash, sequence,
ledgerCloseTime (string), headerXdr (LedgerHeaderHistoryEntry), metadataXdr
(LedgerCloseMeta)}]`, `latestLedger`, `latestLedgerCloseTime`, `oldestLedger`,
`oldestLedgerCloseTime`, `cursor` (the last sequence returned, as a string).
"""

from __future__ import annotations

from typing import Any

from stellar_sdk import xdr

from soroban_devnet.ledger import INVALID_PARAMS, INVALID_REQUEST, DevnetLedger, RpcError

DEFAULT_LEDGERS_LIMIT = 50
MAX_LEDGERS_LIMIT = 200


def _uint(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RpcError(INVALID_PARAMS, f"{name} must be a non-negative integer, got {value!r}")
    return value


def _ledger_info(ledger: DevnetLedger, sequence: int) -> dict[str, Any]:
    # The same synthetic header getLatestLedger serves, so both methods agree on every ledger.
    header = ledger._ledger_header(sequence)  # noqa: SLF001 - the devnet's own header builder
    entry = xdr.LedgerHeaderHistoryEntry(
        hash=xdr.Hash(bytes.fromhex(ledger.ledger_hash(sequence))), header=header, ext=xdr.LedgerHeaderHistoryEntryExt(0)
    )
    meta = xdr.LedgerCloseMeta(
        v=0,
        v0=xdr.LedgerCloseMetaV0(
            ledger_header=entry,
            tx_set=xdr.TransactionSet(previous_ledger_hash=header.previous_ledger_hash, txs=[]),
            tx_processing=[],
            upgrades_processing=[],
            scp_info=[],
        ),
    )
    return {
        "hash": ledger.ledger_hash(sequence),
        "sequence": sequence,
        "ledgerCloseTime": str(ledger.ledger_close_time(sequence)),
        "headerXdr": entry.to_xdr(),
        "metadataXdr": meta.to_xdr(),
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
    oldest = max(1, latest - ledger.retention_window + 1)
    if cursor is not None:
        if start:
            raise RpcError(INVALID_PARAMS, "startLedger and cursor cannot both be set")
        try:
            first = int(cursor) + 1
        except (TypeError, ValueError) as exc:
            raise RpcError(INVALID_PARAMS, f"invalid cursor {cursor!r}") from exc
    else:
        first = _uint(start, "startLedger") if start is not None else 0
        if not oldest <= first <= latest:
            raise RpcError(
                INVALID_REQUEST,
                f"start ledger must be between the oldest ledger: {oldest} and the latest ledger: {latest} "
                "for this rpc instance.",
            )
    last = min(first + limit - 1, latest)
    ledgers = [_ledger_info(ledger, sequence) for sequence in range(max(first, oldest), last + 1)]
    return {
        "ledgers": ledgers,
        "latestLedger": latest,
        "latestLedgerCloseTime": str(ledger.ledger_close_time(latest)),
        "oldestLedger": oldest,
        "oldestLedgerCloseTime": str(ledger.ledger_close_time(oldest)),
        "cursor": str(ledgers[-1]["sequence"]) if ledgers else str(first - 1),
    }


def register_get_ledgers(ledger: DevnetLedger) -> None:
    """Serve `getLedgers` from this ledger."""
    ledger.register_method("getLedgers", lambda params: get_ledgers(ledger, params))
