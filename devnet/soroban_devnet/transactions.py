"""Transactions the devnet knows, served through `getTransaction`.

Seeders record the app's submitted transactions with their final status
(`SUCCESS`, `FAILED`, or never included: simply not recorded → `NOT_FOUND`);
the write path (`sendTransaction`) records what it applies. Transactions in
ledgers older than the retention window answer `NOT_FOUND`, as on a real RPC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stellar_sdk import xdr

from soroban_devnet.ledger import INVALID_PARAMS, DevnetLedger, RpcError

SUCCESS = "SUCCESS"
FAILED = "FAILED"
NOT_FOUND = "NOT_FOUND"
_HASH = re.compile(r"^[0-9a-f]{64}$")


def minimal_result_xdr(success: bool, fee_charged: int = 100) -> str:
    """A real `TransactionResult` with no operation results: enough for status readers."""
    code = xdr.TransactionResultCode.txSUCCESS if success else xdr.TransactionResultCode.txFAILED
    return xdr.TransactionResult(
        fee_charged=xdr.Int64(fee_charged),
        result=xdr.TransactionResultResult(code=code, results=[]),
        ext=xdr.TransactionResultExt(0),
    ).to_xdr()


@dataclass(frozen=True)
class TransactionRecord:
    tx_hash: str
    status: str
    ledger: int
    envelope_xdr: str
    result_xdr: str
    result_meta_xdr: str
    application_order: int = 1
    fee_bump: bool = False


class TransactionStore:
    """The devnet's included transactions, by hash, and the `getTransaction` method."""

    def __init__(self, ledger: DevnetLedger) -> None:
        self.ledger = ledger
        self._records: dict[str, TransactionRecord] = {}
        ledger.register_method("getTransaction", self._rpc_get_transaction)

    def record(self, record: TransactionRecord) -> None:
        if record.status not in (SUCCESS, FAILED):
            raise ValueError(f"only included transactions are recorded, got status {record.status}")
        with self.ledger.lock:
            self._records[record.tx_hash] = record

    def record_status(self, tx_hash: str, status: str, ledger: int | None = None) -> None:
        """Record an app-submitted transaction by its final status (seeding); it is part of its
        ledger's history too."""
        included_at = self.ledger.latest_ledger if ledger is None else ledger
        with self.ledger.transaction(ledger=included_at, tx_hash=tx_hash, successful=status == SUCCESS):
            pass
        self.record(
            TransactionRecord(
                tx_hash=tx_hash,
                status=status,
                ledger=included_at,
                envelope_xdr="",
                result_xdr=minimal_result_xdr(status == SUCCESS),
                result_meta_xdr="",
            )
        )

    def get(self, tx_hash: str) -> TransactionRecord | None:
        with self.ledger.lock:
            return self._records.get(tx_hash)

    def _rpc_get_transaction(self, params: Any) -> dict[str, Any]:
        tx_hash = params.get("hash") if isinstance(params, dict) else None
        if not isinstance(tx_hash, str) or not _HASH.match(tx_hash.lower()):
            raise RpcError(INVALID_PARAMS, "invalid hash: expected 64 hex characters")
        latest = self.ledger.latest_ledger
        oldest = self.ledger.oldest_ledger
        response: dict[str, Any] = {
            "status": NOT_FOUND,
            "txHash": tx_hash.lower(),
            "latestLedger": latest,
            "latestLedgerCloseTime": str(self.ledger.ledger_close_time(latest)),
            "oldestLedger": oldest,
            "oldestLedgerCloseTime": str(self.ledger.ledger_close_time(oldest)),
        }
        record = self._records.get(tx_hash.lower())
        if record is None or record.ledger < oldest or record.ledger > latest:
            return response
        response.update(
            status=record.status,
            applicationOrder=record.application_order,
            feeBump=record.fee_bump,
            envelopeXdr=record.envelope_xdr,
            resultXdr=record.result_xdr,
            resultMetaXdr=record.result_meta_xdr,
            ledger=record.ledger,
            createdAt=str(self.ledger.ledger_close_time(record.ledger)),
        )
        return response
