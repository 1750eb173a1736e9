"""The findings frame: one row per discrepancy, before it is persisted.

Values stay exact: `db_value`/`chain_value` are canonical text, `delta` is a
Python int (object dtype) so an i128 difference is never rounded. Findings on a
money field also carry their asset (code and issuer, or contract id), its
decimals and the exact `amount_at_stake` in base units (`core.money` stamps
them); every other finding leaves those columns empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pandera.pandas as pa

from reconciliation_pipeline.core.amounts import is_exact_int
from reconciliation_pipeline.core.drift import DriftClass, FindingStatus, Severity

MONEY_COLUMNS: tuple[str, ...] = ("asset_code", "asset_issuer", "asset_contract_id", "asset_decimals", "amount_at_stake")
"""Empty unless the finding is about an amount of a known asset."""

FINDING_COLUMNS: tuple[str, ...] = (
    "domain",
    "entity_type",
    "entity_id",
    "entity_key",
    "field",
    "drift_class",
    "severity",
    "db_value",
    "chain_value",
    "delta",
    "ledger_sequence",
    "details",
    *MONEY_COLUMNS,
    "status",
)


def _is_int_or_missing(value: Any) -> bool:
    return value is None or is_exact_int(value)


class FindingsModel(pa.DataFrameModel):
    """What every domain's findings must look like before they reach `recon`."""

    domain: pa.typing.Series[object] = pa.Field(nullable=False)
    entity_type: pa.typing.Series[object] = pa.Field(nullable=False)
    entity_id: pa.typing.Series[object] = pa.Field(nullable=False)
    entity_key: pa.typing.Series[object] = pa.Field(nullable=False)
    field: pa.typing.Series[object] = pa.Field(nullable=False)
    drift_class: pa.typing.Series[object] = pa.Field(isin=[c.value for c in DriftClass])
    severity: pa.typing.Series[object] = pa.Field(isin=[s.value for s in Severity])
    db_value: pa.typing.Series[object] = pa.Field(nullable=True)
    chain_value: pa.typing.Series[object] = pa.Field(nullable=True)
    delta: pa.typing.Series[object] = pa.Field(nullable=True)
    ledger_sequence: pa.typing.Series[object] = pa.Field(nullable=True)
    details: pa.typing.Series[object] = pa.Field(nullable=False)
    asset_code: pa.typing.Series[object] = pa.Field(nullable=True)
    asset_issuer: pa.typing.Series[object] = pa.Field(nullable=True)
    asset_contract_id: pa.typing.Series[object] = pa.Field(nullable=True)
    asset_decimals: pa.typing.Series[object] = pa.Field(nullable=True)
    amount_at_stake: pa.typing.Series[object] = pa.Field(nullable=True)
    status: pa.typing.Series[object] = pa.Field(isin=[s.value for s in FindingStatus])

    @pa.check("delta", name="delta_is_exact_int")
    def delta_is_exact_int(cls, delta: pd.Series) -> pd.Series:
        return delta.map(_is_int_or_missing).astype(bool)

    @pa.check("amount_at_stake", name="amount_at_stake_is_exact_int")
    def amount_at_stake_is_exact_int(cls, amount: pd.Series) -> pd.Series:
        return amount.map(lambda v: v is None or (is_exact_int(v) and v >= 0)).astype(bool)

    @pa.check("details", name="details_is_mapping")
    def details_is_mapping(cls, details: pd.Series) -> pd.Series:
        return details.map(lambda d: isinstance(d, Mapping)).astype(bool)

    class Config:
        strict = True
        ordered = False


_EMPTY_FINDINGS = pd.DataFrame({column: pd.Series([], dtype=object) for column in FINDING_COLUMNS})


def empty_findings() -> pd.DataFrame:
    # A copy of one frame built once: building its 18 columns took 2 ms, and a streaming sweep
    # asks for hundreds of empty results per million entities.
    return _EMPTY_FINDINGS.copy()


def findings_frame(
    *,
    domain: str = "",
    entity_type: str | pd.Series,
    entity_id: pd.Series,
    entity_key: pd.Series,
    field: str | pd.Series,
    drift_class: DriftClass | pd.Series,
    severity: Severity | pd.Series,
    db_value: Any = None,
    chain_value: Any = None,
    delta: Any = None,
    ledger_sequence: Any = None,
    details: pd.Series | None = None,
    status: FindingStatus = FindingStatus.DRIFT,
) -> pd.DataFrame:
    """Build findings column-wise from aligned series (or scalars broadcast to them). The domain is
    usually left empty here: the discrepancies step stamps its domain on every finding."""
    index = entity_id.index
    size = len(index)
    if size == 0:
        return empty_findings()  # most diffs of a chunk find nothing

    def column(value: Any) -> pd.Series:
        if isinstance(value, pd.Series):
            values = value.reindex(index).astype(object)
            return values.where(values.notna(), None)
        return pd.Series([value.value if hasattr(value, "value") else value] * size, index=index, dtype=object)

    frame = pd.DataFrame(
        {
            "domain": column(domain),
            "entity_type": column(entity_type),
            "entity_id": column(entity_id),
            "entity_key": column(entity_key),
            "field": column(field),
            "drift_class": column(drift_class),
            "severity": column(severity),
            "db_value": column(db_value),
            "chain_value": column(chain_value),
            "delta": column(delta),
            "ledger_sequence": column(ledger_sequence),
            "details": details.reindex(index).astype(object)
            if details is not None
            else pd.Series([{}] * size, index=index, dtype=object),
            **{name: pd.Series([None] * size, index=index, dtype=object) for name in MONEY_COLUMNS},
            "status": column(status),
        }
    )
    return frame.reset_index(drop=True)


def concat_findings(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    parts = [f for f in frames if len(f)]
    if not parts:
        return empty_findings()
    return pd.concat(parts, ignore_index=True)[list(FINDING_COLUMNS)]


def with_domain(findings: pd.DataFrame, domain: str) -> pd.DataFrame:
    """The findings stamped with their domain (object dtype, as every findings column)."""
    return findings.assign(domain=pd.Series(domain, index=findings.index, dtype=object))


def drifting(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings that are drift (not in flight)."""
    return findings[findings["status"] == FindingStatus.DRIFT.value]


def counts_by_class(findings: pd.DataFrame) -> dict[str, int]:
    """Drift per class (in-flight findings are counted apart), every class present (zeros included)
    so plots line up."""
    counts = drifting(findings)["drift_class"].value_counts()
    return {c.value: int(counts.get(c.value, 0)) for c in DriftClass}
