"""A fast path for the few XDR shapes the pipeline reads and the keys it builds.

`stellar_sdk.xdr` builds a Python object per XDR node: about 160 µs to parse a
small contract-data entry and 260 µs with `scval.to_native` (STELLAR.md). At a
million entries that is minutes. This module parses only what the layouts in
CONTRACTS.md use, straight from the bytes, into tagged values; encoding keys is
byte concatenation. `tests/chain/test_fastxdr.py` checks both directions against
`stellar_sdk` on property-generated values, i128 extremes included.
"""

from __future__ import annotations

import base64
import binascii
import functools
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from reconciliation_pipeline.chain import strkey

# XDR enum values (Stellar-ledger-entries.x, Stellar-contract.x).
CONTRACT_DATA = 6
TRUSTLINE = 1
PERSISTENT = 1
SCV_BOOL, SCV_VOID, SCV_U32, SCV_I32, SCV_U64, SCV_I64 = 0, 1, 3, 4, 5, 6
SCV_I128, SCV_BYTES, SCV_STRING, SCV_SYMBOL, SCV_VEC, SCV_MAP, SCV_ADDRESS = 10, 13, 14, 15, 16, 17, 18
SCV_CONTRACT_INSTANCE, SCV_LEDGER_KEY_CONTRACT_INSTANCE = 19, 20
SC_ADDRESS_ACCOUNT, SC_ADDRESS_CONTRACT = 0, 1

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_I128 = struct.Struct(">qQ")


class XdrError(ValueError):
    """Bytes that are not the XDR shape expected here."""


class Symbol(str):
    """An ScVal symbol, kept distinct from an ScVal string."""


class Address(str):
    """An ScVal address in strkey form (G... or C...)."""


@functools.lru_cache(maxsize=1 << 17)
def _account(raw: bytes) -> Address:
    return Address(strkey.encode_account(raw))


@functools.lru_cache(maxsize=1 << 17)
def _contract(raw: bytes) -> Address:
    return Address(strkey.encode_contract(raw))


def _read_sc_address(buf: bytes, pos: int) -> tuple[Address, int]:
    (kind,) = _U32.unpack_from(buf, pos)
    if kind == SC_ADDRESS_CONTRACT:
        return _contract(buf[pos + 4 : pos + 36]), pos + 36
    if kind == SC_ADDRESS_ACCOUNT:
        (key_type,) = _U32.unpack_from(buf, pos + 4)
        if key_type != 0:
            raise XdrError(f"unsupported public key type {key_type}")
        return _account(buf[pos + 8 : pos + 40]), pos + 40
    raise XdrError(f"unsupported ScAddress type {kind}")


def _read_opaque(buf: bytes, pos: int) -> tuple[bytes, int]:
    (length,) = _U32.unpack_from(buf, pos)
    start = pos + 4
    end = start + length
    padded = start + ((length + 3) & ~3)
    if padded > len(buf):
        raise XdrError("truncated variable-length data")
    if any(buf[end:padded]):
        raise XdrError("non-zero padding after variable-length data")
    return buf[start:end], padded


MAX_DEPTH = 32
"""How deeply vecs and maps may nest: the layouts need 3; anything deeper is not theirs (and no
input may exhaust the interpreter's stack)."""


def _text(raw: bytes, encoding: str, what: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise XdrError(f"{what} is not {encoding}: {error}") from error


def read_scval(buf: bytes, pos: int = 0, depth: int = 0) -> tuple[tuple[int, Any], int]:
    """One ScVal at `pos`: ((type, value), next position).

    Values: ints for integer types, bool, None for void, `Symbol`, str,
    bytes, `Address`, a list of tagged values for vec, a list of
    (tagged key, tagged value) pairs for map (None for an absent vec/map).
    """
    if depth > MAX_DEPTH:
        raise XdrError(f"ScVal nested deeper than {MAX_DEPTH} levels")
    try:
        (kind,) = _U32.unpack_from(buf, pos)
        pos += 4
        if kind == SCV_I128:
            hi, lo = _I128.unpack_from(buf, pos)
            return (kind, (hi << 64) | lo), pos + 16
        if kind == SCV_U64:
            return (kind, _U64.unpack_from(buf, pos)[0]), pos + 8
        if kind == SCV_U32:
            return (kind, _U32.unpack_from(buf, pos)[0]), pos + 4
        if kind == SCV_SYMBOL:
            raw, pos = _read_opaque(buf, pos)
            return (kind, Symbol(_text(raw, "ascii", "symbol"))), pos
        if kind == SCV_ADDRESS:
            address, pos = _read_sc_address(buf, pos)
            return (kind, address), pos
        if kind == SCV_BOOL:
            (flag,) = _U32.unpack_from(buf, pos)
            if flag > 1:
                raise XdrError(f"invalid bool {flag}")
            return (kind, flag == 1), pos + 4
        if kind == SCV_VOID or kind == SCV_LEDGER_KEY_CONTRACT_INSTANCE:
            return (kind, None), pos
        if kind == SCV_VEC:
            (present,) = _U32.unpack_from(buf, pos)
            pos += 4
            if not present:
                return (kind, None), pos
            (count,) = _U32.unpack_from(buf, pos)
            pos += 4
            items = []
            for _ in range(count):
                item, pos = read_scval(buf, pos, depth + 1)
                items.append(item)
            return (kind, items), pos
        if kind == SCV_MAP:
            (present,) = _U32.unpack_from(buf, pos)
            pos += 4
            if not present:
                return (kind, None), pos
            (count,) = _U32.unpack_from(buf, pos)
            pos += 4
            pairs = []
            for _ in range(count):
                key, pos = read_scval(buf, pos, depth + 1)
                value, pos = read_scval(buf, pos, depth + 1)
                pairs.append((key, value))
            return (kind, pairs), pos
        if kind == SCV_I32:
            return (kind, _I32.unpack_from(buf, pos)[0]), pos + 4
        if kind == SCV_I64:
            return (kind, _I64.unpack_from(buf, pos)[0]), pos + 8
        if kind == SCV_STRING:
            raw, pos = _read_opaque(buf, pos)
            return (kind, _text(raw, "utf-8", "string")), pos
        if kind == SCV_BYTES:
            raw, pos = _read_opaque(buf, pos)
            return (kind, raw), pos
    except struct.error as error:
        raise XdrError(f"truncated ScVal: {error}") from error
    raise XdrError(f"unsupported ScVal type {kind}")


def contract_data_value(entry_data_b64: str) -> tuple[int, Any]:
    """The value of a base64 `LedgerEntryData` that must be persistent/temporary contract data."""
    try:
        buf = base64.b64decode(entry_data_b64, validate=True)
    except ValueError as error:
        raise XdrError(f"not base64: {error}") from error
    try:
        (entry_type,) = _U32.unpack_from(buf, 0)
        if entry_type != CONTRACT_DATA:
            raise XdrError(f"expected a CONTRACT_DATA entry, got ledger entry type {entry_type}")
        (ext,) = _U32.unpack_from(buf, 4)
        if ext != 0:
            raise XdrError(f"unsupported ContractDataEntry extension {ext}")
        _, pos = _read_sc_address(buf, 8)
        _, pos = read_scval(buf, pos)  # the key
        (durability,) = _U32.unpack_from(buf, pos)
        if durability not in (0, PERSISTENT):
            raise XdrError(f"invalid contract data durability {durability}")
        value, end = read_scval(buf, pos + 4)
    except struct.error as error:
        raise XdrError(f"truncated entry: {error}") from error
    if end != len(buf):
        raise XdrError(f"{len(buf) - end} trailing bytes after the entry")
    return value


def entry_key_mismatch(ledger_key_b64: str, entry_data_b64: str) -> str | None:
    """Why an entry is not the one `ledger_key_b64` names, or None when it is.

    A contract-data entry repeats its key (contract, key ScVal, durability) right after
    its type and extension; a trustline starts with its account and asset. An RPC (or a
    proxy, or a bug) that answers a key with another contract's or another holder's
    entry would otherwise decode as if it were the one asked for.
    """
    try:
        key = base64.b64decode(ledger_key_b64, validate=True)
        entry = base64.b64decode(entry_data_b64, validate=True)
    except ValueError as error:
        return f"not base64: {error}"
    if len(key) < 4 or key[:4] != entry[:4]:
        return "the entry's ledger entry type differs from the key's"
    (entry_type,) = _U32.unpack_from(key, 0)
    if entry_type == CONTRACT_DATA:
        named = entry[8 : 8 + len(key) - 4]
    elif entry_type == TRUSTLINE:
        named = entry[4 : len(key)]
    else:
        return None
    if named != key[4:]:
        return "the entry names another contract, key, durability or holder than the one requested"
    return None


# -- encoding keys ---------------------------------------------------------------


def sc_address_bytes(address: str) -> bytes:
    if address.startswith("C"):
        return _U32.pack(SC_ADDRESS_CONTRACT) + strkey.decode_contract(address)
    if address.startswith("G"):
        return _U32.pack(SC_ADDRESS_ACCOUNT) + _U32.pack(0) + strkey.decode_account(address)
    raise XdrError(f"not a G... or C... address: {address!r}")


@functools.lru_cache(maxsize=1 << 12)
def _contract_prefix(contract_id: str) -> bytes:
    return _U32.pack(CONTRACT_DATA) + sc_address_bytes(contract_id)


@functools.lru_cache(maxsize=1 << 10)
def symbol_bytes(name: str) -> bytes:
    raw = name.encode("ascii")
    return _U32.pack(SCV_SYMBOL) + _U32.pack(len(raw)) + raw + b"\0" * (-len(raw) % 4)


_VEC_OF_TWO = _U32.pack(SCV_VEC) + _U32.pack(1) + _U32.pack(2)
_PERSISTENT = _U32.pack(PERSISTENT)


def u64_entry_key(contract_id: str, variant: str, key: int) -> str:
    """Persistent `Variant(u64)` contract-data ledger key, base64."""
    body = _VEC_OF_TWO + symbol_bytes(variant) + _U32.pack(SCV_U64) + _U64.pack(key)
    return base64.b64encode(_contract_prefix(contract_id) + body + _PERSISTENT).decode("ascii")


def address_entry_key(contract_id: str, variant: str, address: str) -> str:
    """Persistent `Variant(Address)` contract-data ledger key, base64."""
    body = _VEC_OF_TWO + symbol_bytes(variant) + _U32.pack(SCV_ADDRESS) + sc_address_bytes(address)
    return base64.b64encode(_contract_prefix(contract_id) + body + _PERSISTENT).decode("ascii")


def _base64_rows(rows: np.ndarray) -> list[str]:
    """Each row of a byte matrix as base64 text."""
    width = rows.shape[1]
    raw = rows.tobytes()
    if width % 3 == 0:  # no padding inside: one encoding for the whole batch, cut row by row
        text = binascii.b2a_base64(raw, newline=False).decode("ascii")
        chars = width // 3 * 4
        return [text[i * chars : (i + 1) * chars] for i in range(len(rows))]
    return [binascii.b2a_base64(raw[i * width : (i + 1) * width], newline=False).decode("ascii")
            for i in range(len(rows))]


def _keys_around(head: bytes, values: np.ndarray) -> np.ndarray:
    """Rows of `head` + each row of `values` + the persistent durability."""
    rows = np.empty((len(values), len(head) + values.shape[1] + 4), dtype=np.uint8)
    rows[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    rows[:, len(head) : len(head) + values.shape[1]] = values
    rows[:, -4:] = np.frombuffer(_PERSISTENT, dtype=np.uint8)
    return rows


def u64_entry_keys(contract_id: str, variant: str, keys: Sequence[int]) -> list[str]:
    """`u64_entry_key` of many keys at once (the same text; a key that is not a u64 raises as there)."""
    try:
        values = np.array(keys, dtype=np.uint64).astype(">u8").view(np.uint8).reshape(len(keys), 8)
    except (OverflowError, TypeError, ValueError):
        return [u64_entry_key(contract_id, variant, key) for key in keys]
    head = _contract_prefix(contract_id) + _VEC_OF_TWO + symbol_bytes(variant) + _U32.pack(SCV_U64)
    return _base64_rows(_keys_around(head, values))


def address_entry_keys(contract_id: str, variant: str, addresses: Sequence[str]) -> list[str]:
    """`address_entry_key` of many addresses at once: the same text, and an address that is not a
    valid G... or C... raises as there."""
    payloads, decoded = strkey.decode_many(addresses)
    accounts = decoded & (payloads[:, 0] == strkey.ACCOUNT_VERSION)
    contracts = decoded & (payloads[:, 0] == strkey.CONTRACT_VERSION)
    keys: list[str | None] = [None] * len(addresses)
    head = _contract_prefix(contract_id) + _VEC_OF_TWO + symbol_bytes(variant) + _U32.pack(SCV_ADDRESS)
    for chosen, kind in ((accounts, _U32.pack(SC_ADDRESS_ACCOUNT) + _U32.pack(0)),
                         (contracts, _U32.pack(SC_ADDRESS_CONTRACT))):
        positions = np.flatnonzero(chosen).tolist()
        if positions:
            for position, key in zip(positions, _base64_rows(_keys_around(head + kind, payloads[chosen, 1:33])),
                                     strict=True):
                keys[position] = key
    return [key if key is not None else address_entry_key(contract_id, variant, address)
            for key, address in zip(keys, addresses, strict=True)]


# -- classic trustlines (USDC balances of G... holders) ------------------------------

ASSET_TYPE_CREDIT_ALPHANUM4, ASSET_TYPE_CREDIT_ALPHANUM12, ASSET_TYPE_POOL_SHARE = 1, 2, 3


def _account_id_bytes(account_id: str) -> bytes:
    return _U32.pack(0) + strkey.decode_account(account_id)


@functools.lru_cache(maxsize=1 << 8)
def _trustline_asset_bytes(asset_code: str, issuer: str) -> bytes:
    raw = asset_code.encode("ascii")
    if not 1 <= len(raw) <= 12:
        raise XdrError(f"asset code must be 1 to 12 characters: {asset_code!r}")
    kind, width = (ASSET_TYPE_CREDIT_ALPHANUM4, 4) if len(raw) <= 4 else (ASSET_TYPE_CREDIT_ALPHANUM12, 12)
    return _U32.pack(kind) + raw.ljust(width, b"\0") + _account_id_bytes(issuer)


def trustline_key(account_id: str, asset_code: str, issuer: str) -> str:
    """A G... account's trustline ledger key, base64."""
    key = _U32.pack(TRUSTLINE) + _account_id_bytes(account_id) + _trustline_asset_bytes(asset_code, issuer)
    return base64.b64encode(key).decode("ascii")


def trustline_balance(entry_data_b64: str) -> int:
    """The `balance` (int64 base units) of a base64 `LedgerEntryData` that must be a trustline."""
    try:
        buf = base64.b64decode(entry_data_b64, validate=True)
    except ValueError as error:
        raise XdrError(f"not base64: {error}") from error
    try:
        (entry_type,) = _U32.unpack_from(buf, 0)
        if entry_type != TRUSTLINE:
            raise XdrError(f"expected a TRUSTLINE entry, got ledger entry type {entry_type}")
        (key_type,) = _U32.unpack_from(buf, 4)
        if key_type != 0:
            raise XdrError(f"unsupported public key type {key_type}")
        pos = 40
        (asset_type,) = _U32.unpack_from(buf, pos)
        widths = {ASSET_TYPE_CREDIT_ALPHANUM4: 4 + 36, ASSET_TYPE_CREDIT_ALPHANUM12: 12 + 36, ASSET_TYPE_POOL_SHARE: 32}
        if asset_type not in widths:
            raise XdrError(f"unsupported trustline asset type {asset_type}")
        if asset_type != ASSET_TYPE_POOL_SHARE:
            code_width = widths[asset_type] - 36
            (issuer_key_type,) = _U32.unpack_from(buf, pos + 4 + code_width)
            if issuer_key_type != 0:
                raise XdrError(f"unsupported issuer public key type {issuer_key_type}")
        pos += 4 + widths[asset_type]
        (balance,) = _I64.unpack_from(buf, pos)
        pos += 8 + 8 + 4  # limit, flags
        (ext,) = _U32.unpack_from(buf, pos)
        pos += 4
        if ext == 1:
            pos += 16  # liabilities
            (ext_v1,) = _U32.unpack_from(buf, pos)
            pos += 4
            if ext_v1 == 2:
                pos += 4  # liquidityPoolUseCount
                (ext_v2,) = _U32.unpack_from(buf, pos)
                if ext_v2 != 0:
                    raise XdrError(f"unsupported trustline extension v2 arm {ext_v2}")
                pos += 4
            elif ext_v1 != 0:
                raise XdrError(f"unsupported trustline extension v1 arm {ext_v1}")
        elif ext != 0:
            raise XdrError(f"unsupported trustline extension {ext}")
    except struct.error as error:
        raise XdrError(f"truncated trustline: {error}") from error
    if pos != len(buf):
        raise XdrError(f"{len(buf) - pos} trailing bytes after the trustline")
    return balance


_CREDIT_ASSET_WIDTHS = {ASSET_TYPE_CREDIT_ALPHANUM4: 4 + 36, ASSET_TYPE_CREDIT_ALPHANUM12: 12 + 36}
"""A credit trustline asset's bytes after its type: the code, then the issuer's account id."""
_TRUSTLINE_EXTENSIONS = (4, 4 + 16 + 4, 4 + 16 + 4 + 4 + 4)
"""The extension's bytes in each arm `trustline_balance` accepts: v0; v1 (liabilities) with v0;
v1 with v2 (pool use count) with v0."""


def trustline_balances(ledger_keys_b64: Sequence[str], entries_b64: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which entries are credit-asset trustlines answering their keys, read for a whole batch at
    once, and their balances (object ints). Only entries `entry_key_mismatch` and `trustline_balance`
    would accept with that very balance are marked decoded; any other (a pool share, a bad arm,
    another holder's entry, not base64) is left for those two to decide one by one."""
    count = len(entries_b64)
    decoded = np.zeros(count, dtype=bool)
    balances = np.full(count, None, dtype=object)
    keys: list[bytes] = []
    entries: list[bytes] = []
    for key_b64, entry_b64 in zip(ledger_keys_b64, entries_b64, strict=True):
        try:
            key, entry = binascii.a2b_base64(key_b64, strict_mode=True), binascii.a2b_base64(entry_b64, strict_mode=True)
        except (binascii.Error, ValueError):
            key, entry = b"", b""  # of no trustline's length: left one by one
        keys.append(key)
        entries.append(entry)
    key_lengths = np.fromiter(map(len, keys), dtype=np.intp, count=count)
    entry_lengths = np.fromiter(map(len, entries), dtype=np.intp, count=count)
    for asset_type, width in _CREDIT_ASSET_WIDTHS.items():
        key_length = 4 + 36 + 4 + width
        extension_at = key_length + 8 + 8 + 4  # after balance, limit, flags
        for extension in _TRUSTLINE_EXTENSIONS:
            length = extension_at + extension
            chosen = np.flatnonzero((key_lengths == key_length) & (entry_lengths == length)).tolist()
            if not chosen:
                continue
            rows = np.frombuffer(b"".join([entries[i] for i in chosen]), dtype=np.uint8).reshape(len(chosen), length)
            key_rows = np.frombuffer(b"".join([keys[i] for i in chosen]), dtype=np.uint8).reshape(len(chosen), key_length)
            words = rows[:, : length // 4 * 4].view(">u4")
            ok = ((words[:, 0] == TRUSTLINE) & (words[:, 1] == 0) & (words[:, 10] == asset_type)
                  & (words[:, (44 + width - 36) // 4] == 0)  # the issuer's key type
                  & (rows[:, :4] == key_rows[:, :4]).all(axis=1) & (rows[:, 4:key_length] == key_rows[:, 4:]).all(axis=1))
            arm = extension_at // 4
            if extension == 4:
                ok &= words[:, arm] == 0
            else:
                ok &= words[:, arm] == 1
                ok &= (words[:, arm + 5] == 0) if extension == 24 else ((words[:, arm + 5] == 2) & (words[:, arm + 7] == 0))
            values = rows[:, key_length : key_length + 8].copy().view(">i8").ravel()
            positions = np.asarray(chosen, dtype=np.intp)[ok]
            decoded[positions] = True
            balances[positions] = np.fromiter(values[ok].tolist(), dtype=object, count=int(ok.sum()))
    return decoded, balances
