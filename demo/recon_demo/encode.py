"""Ledger entries in the CONTRACTS.md layouts, byte by byte, for seeding large worlds.

The SDK's XDR classes build a Python object per node; seeding a million
streams through them takes minutes. These encoders write the same bytes
directly (`reconciliation_pipeline_tests/chain/test_fastxdr.py` checks them
against the SDK, i128 extremes included). Small entries are built with the
SDK in `soroban_devnet.entries`.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from stellar_sdk import scval, xdr

from reconciliation_pipeline.chain.fastxdr import (
    CONTRACT_DATA,
    PERSISTENT,
    SCV_ADDRESS,
    SCV_BOOL,
    SCV_I128,
    SCV_LEDGER_KEY_CONTRACT_INSTANCE,
    SCV_MAP,
    SCV_SYMBOL,
    SCV_U32,
    SCV_U64,
    SCV_VEC,
    SCV_VOID,
    XdrError,
    sc_address_bytes,
    symbol_bytes,
)
from soroban_devnet.entries import unit_enum

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I128 = struct.Struct(">qQ")
_PERSISTENT = _U32.pack(PERSISTENT)

Tagged = tuple[int, Any]
"""A value as `fastxdr.read_scval` returns it: (ScVal type, value)."""


def scval_bytes(tagged: Tagged) -> bytes:
    """The XDR of a tagged value (the subset the layouts use)."""
    kind, value = tagged
    head = _U32.pack(kind)
    if kind == SCV_I128:
        return head + _I128.pack(value >> 64, value & 0xFFFFFFFFFFFFFFFF)
    if kind == SCV_U64:
        return head + _U64.pack(value)
    if kind in (SCV_U32, SCV_BOOL):
        return head + _U32.pack(int(value))
    if kind == SCV_SYMBOL:
        return symbol_bytes(value)
    if kind == SCV_ADDRESS:
        return head + sc_address_bytes(value)
    if kind in (SCV_VOID, SCV_LEDGER_KEY_CONTRACT_INSTANCE):
        return head
    if kind == SCV_VEC:
        return head + _U32.pack(1) + _U32.pack(len(value)) + b"".join(scval_bytes(v) for v in value)
    if kind == SCV_MAP:
        # The host requires map keys sorted; the layouts here only use symbol keys.
        pairs = sorted(value, key=lambda kv: kv[0][1].encode())
        return head + _U32.pack(1) + _U32.pack(len(pairs)) + b"".join(
            scval_bytes(k) + scval_bytes(v) for k, v in pairs
        )
    raise XdrError(f"encoding ScVal type {kind} is not supported")


def struct_value(fields: dict[str, Tagged]) -> Tagged:
    """A `#[contracttype]` struct: a map of symbol keys."""
    return SCV_MAP, [((SCV_SYMBOL, name), value) for name, value in fields.items()]


def unit_enum_value(variant: str) -> Tagged:
    return SCV_VEC, [(SCV_SYMBOL, variant)]


def contract_data_entry_b64(contract_id: str, key: Tagged, value: Tagged) -> tuple[str, str]:
    """(base64 LedgerKey, base64 LedgerEntryData) of a persistent contract-data entry."""
    address = sc_address_bytes(contract_id)
    key_bytes = scval_bytes(key)
    ledger_key = _U32.pack(CONTRACT_DATA) + address + key_bytes + _PERSISTENT
    entry = _U32.pack(CONTRACT_DATA) + _U32.pack(0) + address + key_bytes + _PERSISTENT + scval_bytes(value)
    return base64.b64encode(ledger_key).decode("ascii"), base64.b64encode(entry).decode("ascii")


def stream_value(row: dict[str, Any]) -> xdr.SCVal:
    """`Stream { sender, recipient, token, total, released, status }`, through the SDK."""
    return scval.to_struct(
        {
            "sender": scval.to_address(row["sender"]),
            "recipient": scval.to_address(row["recipient"]),
            "token": scval.to_address(row["token"]),
            "total": scval.to_int128(row["total"]),
            "released": scval.to_int128(row["released"]),
            "status": unit_enum(row["status"].capitalize()),
        }
    )


def stream_entry(contract_id: str, row: dict[str, Any]) -> tuple[str, str]:
    """(base64 LedgerKey, base64 LedgerEntryData) of a `Stream(u64)` entry; a property
    test checks the bytes equal `stream_value` built with the SDK."""
    key = (SCV_VEC, [(SCV_SYMBOL, "Stream"), (SCV_U64, int(row["stream_id"]))])
    value = struct_value(
        {
            "sender": (SCV_ADDRESS, row["sender"]),
            "recipient": (SCV_ADDRESS, row["recipient"]),
            "token": (SCV_ADDRESS, row["token"]),
            "total": (SCV_I128, int(row["total"])),
            "released": (SCV_I128, int(row["released"])),
            "status": unit_enum_value(row["status"].capitalize()),
        }
    )
    return contract_data_entry_b64(contract_id, key, value)


def sac_balance_entry(sac_contract_id: str, holder: str, amount: int) -> tuple[str, str]:
    """A holder's balance on a Stellar Asset Contract: `{amount, authorized, clawback}`."""
    key = (SCV_VEC, [(SCV_SYMBOL, "Balance"), (SCV_ADDRESS, holder)])
    value = struct_value({"amount": (SCV_I128, amount), "authorized": (SCV_BOOL, True), "clawback": (SCV_BOOL, False)})
    return contract_data_entry_b64(sac_contract_id, key, value)
