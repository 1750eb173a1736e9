"""A reconciliation described as data.

A `ReconSpec` says where each side of one entity type comes from (a SQL file;
a contract-data layout), which canonical columns to compare and how, which
invariants hold, which side is authoritative and which fields may be repaired.
Generic code (`core.snapshots`, `core.diff`, `core.drift_store`,
`core.repairs`) turns it into snapshots, findings and repairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd
import pandera.pandas as pa

from reconciliation_pipeline.chain import keys as chain_keys
from reconciliation_pipeline.chain.layouts import ScalarLayout, StructLayout
from reconciliation_pipeline.core.drift import DriftClass, Severity


class Authority(StrEnum):
    """The side that is right when the two disagree; repairs change the other one."""

    CHAIN = "chain"
    DATABASE = "database"


class Comparison(StrEnum):
    AMOUNT = "amount"  # exact integers in base units; a tolerance in base units
    EXACT = "exact"  # statuses, flags, identifiers
    ADDRESS = "address"  # exact, but an invalid database address is INVALID_ADDRESS instead


class KeyKind(StrEnum):
    U64 = "u64"
    ADDRESS = "address"


@dataclass(frozen=True)
class ComparedField:
    name: str
    comparison: Comparison
    drift_class: DriftClass = DriftClass.VALUE_MISMATCH
    severity: Severity = Severity.WARN
    tolerance: int = 0
    repair_query: str | None = None
    """`sql/` path of the compare-and-swap UPDATE that repairs this field, if repairable."""

    def __post_init__(self) -> None:
        if self.tolerance < 0 or not isinstance(self.tolerance, int):
            raise ValueError(f"{self.name}: tolerance must be a non-negative integer in base units")


@dataclass(frozen=True)
class ContractDataLayout:
    """How one kind of persistent contract-data entry is keyed and decoded."""

    key_variant: str
    key_kind: KeyKind
    decode: Callable[[str], dict[str, Any]]
    """base64 `LedgerEntryData` -> canonical columns; raises `DecodeError`."""
    columns: tuple[str, ...]

    @classmethod
    def of(cls, key_variant: str, key_kind: KeyKind, value: StructLayout | ScalarLayout) -> ContractDataLayout:
        """A layout whose value is declared as data (fast, strict decoding)."""
        return cls(key_variant=key_variant, key_kind=key_kind, decode=value.decode, columns=value.columns)

    def ledger_key(self, contract_id: str, key: Any) -> str:
        if self.key_kind is KeyKind.U64:
            return chain_keys.u64_entry_key(contract_id, self.key_variant, int(key))
        return chain_keys.address_entry_key(contract_id, self.key_variant, str(key))


@dataclass(frozen=True)
class ReconSpec:
    domain: str
    entity_type: str
    key_column: str
    snapshot_query: str
    """`sql/` path of the query that snapshots the database side into canonical columns."""
    layout: ContractDataLayout
    compared: tuple[ComparedField, ...]
    authority: Authority
    entity_id_prefix: str = ""
    amount_columns: tuple[str, ...] = ()
    """Columns the snapshot query returns as text and that become exact ints."""
    address_columns: tuple[str, ...] = ()
    """Database columns holding Stellar addresses; invalid ones are INVALID_ADDRESS."""
    db_invariants: type[pa.DataFrameModel] | None = None
    chain_invariants: type[pa.DataFrameModel] | None = None
    db_invariant_severity: Severity = Severity.WARN
    chain_invariant_severity: Severity = Severity.CRITICAL
    missing_severity: Severity = Severity.WARN
    read_error_severity: Severity = Severity.WARN
    invalid_address_severity: Severity = Severity.WARN
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [f.name for f in self.compared]
        unknown = set(names) - set(self.layout.columns)
        if unknown:
            raise ValueError(f"{self.domain}: compared fields {sorted(unknown)} are not decoded from the chain")
        if self.authority is Authority.DATABASE and any(f.repair_query for f in self.compared):
            raise ValueError(f"{self.domain}: database-authoritative specs repair the chain, not SQL rows")

    @property
    def repairable(self) -> dict[str, ComparedField]:
        return {f.name: f for f in self.compared if f.repair_query is not None}

    def entity_ids(self, keys: pd.Series) -> pd.Series:
        return self.entity_id_prefix + keys.astype(str)

    def normalize_keys(self, keys: pd.Series) -> pd.Series:
        """Keys in one canonical dtype on both sides so the merge matches them."""
        if self.layout.key_kind is KeyKind.U64:
            return keys.map(int).astype("uint64")
        return keys.astype(object)
