"""Strict decoding of contract-data entries into plain Python values.

Strict on purpose: an entry that does not follow its CONTRACTS.md layout
raises `DecodeError`, which the pipeline records as a CHAIN_READ_ERROR finding
with the raw payload, instead of guessing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from stellar_sdk import Address, scval, xdr


class DecodeError(ValueError):
    """An entry that does not match the layout it was read as."""


DecodeResult = tuple[dict[str, Any] | None, str | None]
"""An entry's canonical values, or why it is not the entry its key names / does not decode."""


def object_array(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Values as a 1-D object array, whatever they are (never inferred, never split into dimensions)."""
    return np.fromiter(values, dtype=object, count=len(values))


@dataclass(frozen=True)
class DecodedBatch:
    """A batch of entries decoded column by column: `values[column][i]` is entry i's value (None
    where it did not decode) and `errors[i]` why entry i did not."""

    values: Mapping[str, np.ndarray]
    errors: Mapping[int, str]

    @classmethod
    def of(cls, columns: Sequence[str], results: Sequence[DecodeResult]) -> DecodedBatch:
        """From each entry's (values, error), as one-by-one decoding gives them."""
        errors = {i: error or "undecodable entry" for i, (values, error) in enumerate(results) if values is None}
        return cls(values={column: object_array([None if values is None else values.get(column)
                                                 for values, _ in results]) for column in columns},
                   errors=errors)


def contract_data_value(entry_data_b64: str) -> xdr.SCVal:
    """The value of a `LedgerEntryData` that must be contract data."""
    try:
        data = xdr.LedgerEntryData.from_xdr(entry_data_b64)
    except Exception as exc:  # the XDR parser raises several unrelated types
        raise DecodeError(f"not LedgerEntryData XDR: {exc}") from exc
    if data.type != xdr.LedgerEntryType.CONTRACT_DATA or data.contract_data is None:
        raise DecodeError(f"expected a CONTRACT_DATA entry, got {data.type.name}")
    return data.contract_data.val


def symbol_text(value: xdr.SCVal, field: str) -> str:
    """A symbol's text; a symbol that is not text is a `DecodeError`, not a crash."""
    try:
        return scval.from_symbol(value)
    except UnicodeDecodeError as error:
        raise DecodeError(f"{field}: a symbol that is not text: {error}") from error


def struct_fields(value: xdr.SCVal, expected: Collection[str]) -> dict[str, xdr.SCVal]:
    """A `#[contracttype]` struct: a map with exactly the expected symbol keys."""
    if value.type != xdr.SCValType.SCV_MAP or value.map is None:
        raise DecodeError(f"expected a struct (map), got {value.type.name}")
    fields: dict[str, xdr.SCVal] = {}
    for entry in value.map.sc_map:
        if entry.key.type != xdr.SCValType.SCV_SYMBOL:
            raise DecodeError(f"struct key is {entry.key.type.name}, not a symbol")
        fields[symbol_text(entry.key, "struct key")] = entry.val
    if set(fields) != set(expected):
        raise DecodeError(f"struct fields {sorted(fields)} != expected {sorted(expected)}")
    return fields


def _expect(value: xdr.SCVal, kind: xdr.SCValType, field: str) -> None:
    if value.type != kind:
        raise DecodeError(f"{field}: expected {kind.name}, got {value.type.name}")


def as_i128(value: xdr.SCVal, field: str) -> int:
    _expect(value, xdr.SCValType.SCV_I128, field)
    return scval.from_int128(value)


def as_u64(value: xdr.SCVal, field: str) -> int:
    _expect(value, xdr.SCValType.SCV_U64, field)
    return scval.from_uint64(value)


def as_u32(value: xdr.SCVal, field: str) -> int:
    _expect(value, xdr.SCValType.SCV_U32, field)
    return scval.from_uint32(value)


def as_bool(value: xdr.SCVal, field: str) -> bool:
    _expect(value, xdr.SCValType.SCV_BOOL, field)
    return scval.from_bool(value)


def as_address(value: xdr.SCVal, field: str) -> str:
    _expect(value, xdr.SCValType.SCV_ADDRESS, field)
    return Address.from_xdr_sc_address(value.address).address


def as_unit_enum(value: xdr.SCVal, variants: Collection[str], field: str) -> str:
    """A unit enum variant `Vec[Symbol(name)]`, returned lower-cased (canonical form)."""
    _expect(value, xdr.SCValType.SCV_VEC, field)
    items = value.vec.sc_vec if value.vec is not None else []
    if len(items) != 1 or items[0].type != xdr.SCValType.SCV_SYMBOL:
        raise DecodeError(f"{field}: expected a unit enum Vec[Symbol], got {len(items)} items")
    name = symbol_text(items[0], field)
    if name not in variants:
        raise DecodeError(f"{field}: unknown variant {name!r} (expected one of {sorted(variants)})")
    return name.lower()
