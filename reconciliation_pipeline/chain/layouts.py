"""Contract value layouts declared as data, decoded strictly and fast.

A layout names the fields of a `#[contracttype]` struct and their types
(CONTRACTS.md). `decode` reads them with the byte-level parser in `fastxdr`;
`decode_reference` does the same through `stellar_sdk`'s XDR classes. Both
raise `DecodeError` on anything that does not follow the layout; a property
test keeps them identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stellar_sdk import xdr

from reconciliation_pipeline.chain import decode as sdk_decode
from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.chain.decode import DecodeError


class Kind(StrEnum):
    ADDRESS = "address"
    I128 = "i128"
    U64 = "u64"
    U32 = "u32"
    BOOL = "bool"


@dataclass(frozen=True)
class UnitEnum:
    """A `#[contracttype]` enum of unit variants; decoded to the lower-cased name."""

    variants: tuple[str, ...]


FieldType = Kind | UnitEnum

_TAGS = {
    Kind.ADDRESS: fastxdr.SCV_ADDRESS,
    Kind.I128: fastxdr.SCV_I128,
    Kind.U64: fastxdr.SCV_U64,
    Kind.U32: fastxdr.SCV_U32,
    Kind.BOOL: fastxdr.SCV_BOOL,
}


def _type_name(tag: int) -> str:
    return xdr.SCValType(tag).name if tag in xdr.SCValType._value2member_map_ else f"type {tag}"


def _fast_field(name: str, kind: FieldType, tagged: tuple[int, Any]) -> Any:
    tag, value = tagged
    if isinstance(kind, UnitEnum):
        if tag != fastxdr.SCV_VEC:
            raise DecodeError(f"{name}: expected SCV_VEC, got {_type_name(tag)}")
        items = value or []
        if len(items) != 1 or items[0][0] != fastxdr.SCV_SYMBOL:
            raise DecodeError(f"{name}: expected a unit enum Vec[Symbol], got {len(items)} items")
        variant = items[0][1]
        if variant not in kind.variants:
            raise DecodeError(f"{name}: unknown variant {variant!r} (expected one of {sorted(kind.variants)})")
        return variant.lower()
    expected = _TAGS[kind]
    if tag != expected:
        raise DecodeError(f"{name}: expected {_type_name(expected)}, got {_type_name(tag)}")
    return str(value) if kind is Kind.ADDRESS else value


def _reference_field(name: str, kind: FieldType, value: xdr.SCVal) -> Any:
    if isinstance(kind, UnitEnum):
        return sdk_decode.as_unit_enum(value, kind.variants, name)
    return {
        Kind.ADDRESS: sdk_decode.as_address,
        Kind.I128: sdk_decode.as_i128,
        Kind.U64: sdk_decode.as_u64,
        Kind.U32: sdk_decode.as_u32,
        Kind.BOOL: sdk_decode.as_bool,
    }[kind](value, name)


def _fast_value(entry_data_b64: str) -> tuple[int, Any]:
    try:
        return fastxdr.contract_data_value(entry_data_b64)
    except fastxdr.XdrError as error:
        raise DecodeError(str(error)) from error
    except (UnicodeDecodeError, ValueError) as error:
        raise DecodeError(f"not LedgerEntryData XDR: {error}") from error


@dataclass(frozen=True)
class StructLayout:
    """A struct value: a map with exactly these symbol keys."""

    fields: Mapping[str, FieldType]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def decode(self, entry_data_b64: str) -> dict[str, Any]:
        tag, pairs = _fast_value(entry_data_b64)
        if tag != fastxdr.SCV_MAP or pairs is None:
            raise DecodeError(f"expected a struct (map), got {_type_name(tag)}")
        values: dict[str, tuple[int, Any]] = {}
        for (key_tag, key), value in pairs:
            if key_tag != fastxdr.SCV_SYMBOL:
                raise DecodeError(f"struct key is {_type_name(key_tag)}, not a symbol")
            values[key] = value
        if set(values) != set(self.fields):
            raise DecodeError(f"struct fields {sorted(values)} != expected {sorted(self.fields)}")
        return {name: _fast_field(name, kind, values[name]) for name, kind in self.fields.items()}

    def decode_reference(self, entry_data_b64: str) -> dict[str, Any]:
        fields = sdk_decode.struct_fields(sdk_decode.contract_data_value(entry_data_b64), self.fields)
        return {name: _reference_field(name, kind, fields[name]) for name, kind in self.fields.items()}


@dataclass(frozen=True)
class ScalarLayout:
    """A plain value, e.g. `Reputation(Address) -> u32`, decoded into one column."""

    column: str
    kind: FieldType

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def decode(self, entry_data_b64: str) -> dict[str, Any]:
        return {self.column: _fast_field(self.column, self.kind, _fast_value(entry_data_b64))}

    def decode_reference(self, entry_data_b64: str) -> dict[str, Any]:
        value = sdk_decode.contract_data_value(entry_data_b64)
        return {self.column: _reference_field(self.column, self.kind, value)}


SAC_BALANCE = StructLayout(fields={"amount": Kind.I128, "authorized": Kind.BOOL, "clawback": Kind.BOOL})
"""A holder's balance entry on a Stellar Asset Contract (CONTRACTS.md §6)."""
