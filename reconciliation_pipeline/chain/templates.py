"""Batch decoding of struct entries by byte templates, strict and vectorized.

Entries of one contract type differ only in their values: two `Stream` entries
whose addresses are of the same kind and whose status symbols have the same
length are the same bytes outside the key, the amounts, the addresses and the
status. So the first entry of each byte shape is decoded strictly
(`StructLayout.decode`), which also says where its value slots are; every later
entry of that length whose bytes outside the slots are identical to it has the
same structure, and its values are read from the slots for the whole batch at
once with numpy. What a slot holds is still checked (a bool is 0 or 1, a status
is one of the variants, padding is zero); an entry that matches no template, or
whose slot values do not check, goes through the strict decoder, so every entry
that does not follow the layout is still its own typed error.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reconciliation_pipeline.chain import fastxdr, strkey
from reconciliation_pipeline.chain.decode import DecodedBatch, DecodeError, DecodeResult, object_array

MAX_TEMPLATES_PER_LENGTH = 16
"""Shapes learned per entry length; beyond, entries of that length decode one by one."""


@dataclass(frozen=True)
class _Slot:
    name: str
    kind: str
    """`i128`, `u64`, `u32`, `bool`, `account`, `contract`, `symbol`."""
    offset: int
    length: int


@dataclass(frozen=True)
class _Template:
    fixed: np.ndarray
    """Positions (a bool mask over the entry's bytes) that must equal `reference`."""
    reference: np.ndarray
    slots: tuple[_Slot, ...]


def _scval_slot(name: str, buf: bytes, pos: int, variants: tuple[str, ...] | None) -> tuple[_Slot, int]:
    """The slot of one field's value at `pos` (its tag and shape are fixed bytes)."""
    (tag,) = struct.unpack_from(">I", buf, pos)
    if tag == fastxdr.SCV_I128:
        return _Slot(name, "i128", pos + 4, 16), pos + 20
    if tag == fastxdr.SCV_U64:
        return _Slot(name, "u64", pos + 4, 8), pos + 12
    if tag == fastxdr.SCV_U32:
        return _Slot(name, "u32", pos + 4, 4), pos + 8
    if tag == fastxdr.SCV_BOOL:
        return _Slot(name, "bool", pos + 4, 4), pos + 8
    if tag == fastxdr.SCV_ADDRESS:
        (kind,) = struct.unpack_from(">I", buf, pos + 4)
        if kind == fastxdr.SC_ADDRESS_CONTRACT:
            return _Slot(name, "contract", pos + 8, 32), pos + 40
        return _Slot(name, "account", pos + 12, 32), pos + 44
    if tag == fastxdr.SCV_VEC and variants is not None:
        # Vec(present=1, count=1, Symbol(len, bytes)): the symbol's bytes (and padding) vary.
        (length,) = struct.unpack_from(">I", buf, pos + 16)
        padded = (length + 3) & ~3
        return _Slot(name, "symbol", pos + 20, padded), pos + 20 + padded
    raise DecodeError(f"{name}: no template for ScVal type {tag}")


def _learn(buf: bytes, fields: dict[str, Any]) -> _Template:
    """The template of a strictly valid struct entry: where each field's value lies."""
    _, pos = fastxdr._read_sc_address(buf, 8)
    key_start = pos
    _, pos = fastxdr.read_scval(buf, pos)
    key_end = pos
    pos += 4  # durability
    pos += 12  # Map tag, present, count
    slots = []
    by_name = dict(fields)
    for _ in range(len(fields)):
        (symbol_length,) = struct.unpack_from(">I", buf, pos + 4)
        name = buf[pos + 8 : pos + 8 + symbol_length].decode("ascii")
        pos += 8 + ((symbol_length + 3) & ~3)
        kind = by_name[name]
        slot, pos = _scval_slot(name, buf, pos, getattr(kind, "variants", None))
        slots.append(slot)
    fixed = np.ones(len(buf), dtype=bool)
    fixed[key_start:key_end] = False  # the key is checked against the requested key instead
    for slot in slots:
        fixed[slot.offset : slot.offset + slot.length] = False
    return _Template(fixed=fixed, reference=np.frombuffer(buf, dtype=np.uint8), slots=tuple(slots))


def _symbols(rows: np.ndarray, variants: tuple[str, ...]) -> tuple[list[str | None], np.ndarray]:
    """Each row's unit-enum variant (lower-cased), and which rows hold one exactly."""
    width = rows.shape[1]
    raw = np.ascontiguousarray(rows).tobytes()
    known = {v.encode("ascii").ljust(width, b"\0"): v.lower() for v in variants if (len(v) + 3) & ~3 == width}
    values = [known.get(raw[i * width : (i + 1) * width]) for i in range(len(rows))]
    return values, np.fromiter((v is not None for v in values), dtype=bool, count=len(values))


_I64_MIN = np.uint64(1 << 63)


def _i128s(cells: np.ndarray) -> np.ndarray:
    """Big-endian i128 cells as exact Python ints; those within int64 (almost every amount) are
    converted by numpy, the others one by one."""
    high = cells[:, :8].copy().view(">i8").ravel()
    low = cells[:, 8:].copy().view(">u8").ravel()
    small = ((high == 0) & (low < _I64_MIN)) | ((high == -1) & (low >= _I64_MIN))
    values = object_array(low.astype(np.int64).tolist())
    for row in np.flatnonzero(~small).tolist():
        values[row] = (int(high[row]) << 64) | int(low[row])
    return values


class StructTemplates:
    """Decodes batches of `StructLayout` entries; results match `StructLayout.decode` exactly."""

    def __init__(self, layout: Any) -> None:
        self.layout = layout
        self.templates: dict[int, list[_Template]] = {}
        self.addresses = strkey.EncodingCache()

    def _decode_one(self, ledger_key: bytes, entry: bytes, entry_b64: str) -> DecodeResult:
        """The strict path (and, for a valid entry of a new shape, its template)."""
        mismatch = _key_mismatch(ledger_key, entry)
        if mismatch is not None:
            return None, f"undecodable entry: {mismatch}"
        try:
            values = self.layout.decode(entry_b64)
        except DecodeError as error:
            return None, f"undecodable entry: {error}"
        except Exception as error:  # a malformed payload must not end the read
            return None, f"undecodable entry: {type(error).__name__}: {error}"
        learned = self.templates.setdefault(len(entry), [])
        if len(learned) < MAX_TEMPLATES_PER_LENGTH:
            try:
                learned.append(_learn(entry, dict(self.layout.fields)))
            except (DecodeError, KeyError, struct.error, UnicodeDecodeError):
                pass  # a shape without a template decodes one by one
        return values, None

    def decode_many(self, ledger_keys: Sequence[str], entries_b64: Sequence[str]) -> DecodedBatch:
        """Aligned base64 ledger keys and entries -> each entry's values or error, column by column."""
        names = tuple(self.layout.fields)
        values = {name: np.full(len(entries_b64), None, dtype=object) for name in names}
        errors: dict[int, str] = {}

        def record(position: int, result: DecodeResult) -> None:
            decoded, error = result
            if decoded is None:
                errors[position] = error or "undecodable entry"
                return
            for name in names:
                values[name][position] = decoded[name]

        try:
            entries = [binascii.a2b_base64(entry, strict_mode=True) for entry in entries_b64]
            keys = [binascii.a2b_base64(key) for key in ledger_keys]
        except (binascii.Error, ValueError):
            entries, keys = [], []
            for position, (ledger_key, entry_b64) in enumerate(zip(ledger_keys, entries_b64, strict=True)):
                try:
                    entries.append(binascii.a2b_base64(entry_b64, strict_mode=True))
                    keys.append(binascii.a2b_base64(ledger_key))
                except (binascii.Error, ValueError):
                    entries.append(b"")
                    keys.append(b"")
                    record(position, _strict(self.layout, ledger_key, entry_b64))
        lengths = np.fromiter(map(len, entries), dtype=np.intp, count=len(entries))
        lengths[list(errors)] = -1  # not base64: decided above
        by_length = {int(length): np.flatnonzero(lengths == length) for length in np.unique(lengths) if length >= 0}
        for length, left in by_length.items():
            for template in self.templates.get(length, []):
                if not len(left):
                    break
                left = self._apply(template, left, entries, keys, values, errors)
            for position in left.tolist():
                record(position, self._decode_one(keys[position], entries[position], entries_b64[position]))
        return DecodedBatch(values=values, errors=errors)

    def _apply(self, template: _Template, positions: np.ndarray, entries: list[bytes], keys: list[bytes],
               values: dict[str, np.ndarray], errors: dict[int, str]) -> np.ndarray:
        """Decode the entries that match the template into `values`; returns the positions left over."""
        chosen = positions.tolist()
        rows = np.frombuffer(b"".join([entries[p] for p in chosen]), dtype=np.uint8).reshape(len(chosen), -1)
        matches = (rows[:, template.fixed] == template.reference[template.fixed]).all(axis=1)
        columns: dict[str, np.ndarray] = {}
        for slot in template.slots:
            cells = rows[:, slot.offset : slot.offset + slot.length]
            if slot.kind == "i128":
                columns[slot.name] = _i128s(cells)
            elif slot.kind in ("u64", "u32"):
                columns[slot.name] = object_array(
                    cells.copy().view(">u8" if slot.kind == "u64" else ">u4").ravel().tolist())
            elif slot.kind == "bool":
                matches &= (cells[:, :3] == 0).all(axis=1) & (cells[:, 3] <= 1)
                columns[slot.name] = object_array((cells[:, 3] == 1).tolist())
            elif slot.kind == "symbol":
                symbols, known = _symbols(cells, self.layout.fields[slot.name].variants)
                matches &= known
                columns[slot.name] = object_array(symbols)
            else:
                columns[slot.name] = self.addresses.encode_many(
                    cells, strkey.CONTRACT_VERSION if slot.kind == "contract" else strkey.ACCOUNT_VERSION)
        answering = matches & _answer_keys(rows, [keys[p] for p in chosen], [entries[p] for p in chosen])
        for row in np.flatnonzero(matches & ~answering).tolist():
            errors[chosen[row]] = f"undecodable entry: {_key_mismatch(keys[chosen[row]], entries[chosen[row]])}"
        decoded = positions[answering]
        for name, column in columns.items():
            values[name][decoded] = column[answering]
        return positions[~matches]


def _answer_keys(rows: np.ndarray, keys: list[bytes], entries: list[bytes]) -> np.ndarray:
    """Which contract-data entries (`rows`, of one length) are the entries their ledger keys name
    (`_key_mismatch` is None): all rows at once where the keys are of one length."""
    lengths = {len(key) for key in keys}
    if len(lengths) != 1 or (length := lengths.pop()) < 4 or 8 + length - 4 > rows.shape[1]:
        return np.array([_key_mismatch(key, entry) is None for key, entry in zip(keys, entries, strict=True)],
                        dtype=bool)
    key_rows = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), length)
    return (rows[:, :4] == key_rows[:, :4]).all(axis=1) & (rows[:, 8 : 8 + length - 4] == key_rows[:, 4:]).all(axis=1)


def _strict(layout: Any, ledger_key_b64: str, entry_b64: str) -> DecodeResult:
    """The one-by-one path for what is not even base64 (its error worded as that path words it)."""
    mismatch = fastxdr.entry_key_mismatch(ledger_key_b64, entry_b64)
    if mismatch is not None:
        return None, f"undecodable entry: {mismatch}"
    try:
        return layout.decode(entry_b64), None
    except DecodeError as error:
        return None, f"undecodable entry: {error}"
    except Exception as error:  # a malformed payload must not end the read
        return None, f"undecodable entry: {type(error).__name__}: {error}"


def _key_mismatch(key: bytes, entry: bytes) -> str | None:
    """`fastxdr.entry_key_mismatch` on decoded bytes (contract-data entries)."""
    if len(key) < 4 or key[:4] != entry[:4]:
        return "the entry's ledger entry type differs from the key's"
    if entry[:4] == fastxdr._U32.pack(fastxdr.CONTRACT_DATA) and entry[8 : 8 + len(key) - 4] != key[4:]:
        return "the entry names another contract, key, durability or holder than the one requested"
    if entry[:4] == fastxdr._U32.pack(fastxdr.TRUSTLINE) and entry[4 : len(key)] != key[4:]:
        return "the entry names another contract, key, durability or holder than the one requested"
    return None
