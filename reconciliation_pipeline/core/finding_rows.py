"""Findings as the rows `recon.discrepancies` stores, one finding at a time.

A domain's findings are persisted in one transaction, so one value PostgreSQL
rejects would roll back all of them. Each finding is therefore made storable on
its own: a finding whose values cannot be stored (a delta that is not an exact
integer, a ledger beyond BIGINT, details that are not a mapping, ...) keeps its
identity (entity, field, class, severity, drift or in flight, so incidents still
follow it) and
becomes a *storage error*: its values move, as text, into `details.unstored`
beside `details.storage_error`, which says why. The rest persist untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.errors as pa_errors

from reconciliation_pipeline.core.amounts import is_exact_int
from reconciliation_pipeline.core.findings import FINDING_COLUMNS, MONEY_COLUMNS, FindingsModel
from reconciliation_pipeline.core.json_text import plain, storable_text, to_json

STORAGE_ERROR = "storage_error"
"""The `details` key of a finding stored without its values, and why."""
UNSTORED = "unstored"
"""The `details` key holding such a finding's original values, as text."""

IDENTITY_COLUMNS = ("domain", "entity_type", "entity_id", "field", "drift_class", "severity", "status")
VALUE_COLUMNS = ("db_value", "chain_value", "delta", "ledger_sequence", "details", *MONEY_COLUMNS)
_BIGINT_MAX = 2**63 - 1
_SMALLINT_MAX = 2**15 - 1
_UNSTORED_TEXT_LIMIT = 2000
_ERROR_TEXT_LIMIT = 500


class UnstorableFindingsError(ValueError):
    """Findings wrong as a whole (a missing column, an unknown drift class): a defect in the code
    that built them, not in the data, so the persist fails and names it."""


@dataclass(frozen=True)
class FindingParams:
    """One finding's insert parameters (without the run's own: run id, partition, snapshot time)."""

    values: dict[str, Any]


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str | None:
    return None if missing(value) else storable_text(str(value))


def _bounded_int(value: Any, name: str, lowest: int, highest: int) -> int | None:
    if missing(value):
        return None
    if not is_exact_int(value):
        raise ValueError(f"{name} must be an exact integer, got {value!r}")
    number = int(value)
    if not lowest <= number <= highest:
        raise ValueError(f"{name} {number} is outside {lowest}..{highest}")
    return number


def finding_params(record: Mapping[str, Any]) -> FindingParams:
    """The columns of one finding as `insert_finding.sql` binds them; raises ValueError when a value
    cannot be stored."""
    details = record["details"]
    if not isinstance(details, Mapping):
        raise ValueError(f"details must be a mapping, got {type(details).__name__}")
    delta = record["delta"]
    if not missing(delta) and not is_exact_int(delta):
        raise ValueError(f"delta must be an exact integer, got {delta!r}")
    amount = record["amount_at_stake"]
    if not missing(amount) and not (is_exact_int(amount) and int(amount) >= 0):
        raise ValueError(f"amount_at_stake must be a non-negative exact integer, got {amount!r}")
    return FindingParams({
        **{name: _text(record[name]) for name in IDENTITY_COLUMNS},
        "db_value": _text(record["db_value"]),
        "chain_value": _text(record["chain_value"]),
        "delta": None if missing(delta) else str(int(delta)),
        "ledger_sequence": _bounded_int(record["ledger_sequence"], "ledger_sequence", 0, _BIGINT_MAX),
        "details": to_json({"entity_key": record["entity_key"], **details}),
        "asset_code": _text(record["asset_code"]),
        "asset_issuer": _text(record["asset_issuer"]),
        "asset_contract_id": _text(record["asset_contract_id"]),
        "asset_decimals": _bounded_int(record["asset_decimals"], "asset_decimals", 0, _SMALLINT_MAX),
        "amount_at_stake": None if missing(amount) else str(int(amount)),
    })


def _unstored_text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return storable_text(text[:_UNSTORED_TEXT_LIMIT])


def storage_error_record(record: Mapping[str, Any], error: str) -> dict[str, Any]:
    """`record` with its values replaced by what could not be stored, as text, and why."""
    unstored = {name: _unstored_text(record.get(name)) for name in VALUE_COLUMNS if not missing(record.get(name))}
    return {
        **{name: storable_text(str(record[name])) for name in IDENTITY_COLUMNS},
        "entity_key": plain(record.get("entity_key")),
        **{name: None for name in VALUE_COLUMNS},
        "details": {STORAGE_ERROR: storable_text(error[:_ERROR_TEXT_LIMIT]), UNSTORED: unstored},
    }


@dataclass(frozen=True)
class StorableFindings:
    findings: pd.DataFrame
    """The findings as stored: a storage-error row in place of each one that could not be."""
    params: list[FindingParams]
    """Aligned with `findings`' rows."""
    storage_errors: int

    def replace(self, positions: Mapping[int, str]) -> StorableFindings:
        """The same findings with the rows at `positions` (position -> error) turned into storage errors."""
        if not positions:
            return self
        records = self.findings.to_dict("records")
        params = list(self.params)
        for position, error in positions.items():
            records[position] = storage_error_record(records[position], error)
            params[position] = finding_params(records[position])
        # Built as objects, never inferred: an inferred str column is Arrow-backed where pyarrow is
        # installed, and Arrow cannot hold the lone surrogates a storage error keeps as text.
        frame = pd.DataFrame({column: pd.Series([r.get(column) for r in records], dtype=object)
                              for column in FINDING_COLUMNS})
        return StorableFindings(frame, params, self.storage_errors + len(positions))


def _row_validation_errors(findings: pd.DataFrame) -> dict[int, str]:
    """Per-row pandera failures by position; a failure of the frame as a whole raises."""
    try:
        FindingsModel.validate(findings, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases
        whole = cases[cases["index"].isna() | cases["column"].isin(IDENTITY_COLUMNS + ("entity_key",))]
        if len(whole):
            raise UnstorableFindingsError(f"findings do not follow FindingsModel: {whole.to_dict('records')}") from errors
        positions: dict[int, list[str]] = {}
        for index, column, check in zip(cases["index"], cases["column"], cases["check"], strict=True):
            positions.setdefault(findings.index.get_loc(index), []).append(f"{column}: {check}")
        return {p: "; ".join(sorted(set(reasons))) for p, reasons in positions.items()}
    return {}


def storable_findings(findings: pd.DataFrame) -> StorableFindings:
    """The findings ready to insert, each one that cannot be stored made a storage error."""
    frame = findings.reset_index(drop=True)
    invalid = _row_validation_errors(frame)
    params: list[FindingParams | None] = []
    for position, record in enumerate(frame.to_dict("records")):
        if position in invalid:
            params.append(None)
            continue
        try:
            params.append(finding_params(record))
        except (ValueError, TypeError, OverflowError) as error:
            invalid[position] = str(error)
            params.append(None)
    placeholder = FindingParams({})
    stored = StorableFindings(frame, [p or placeholder for p in params], 0)
    return stored.replace(invalid)


def insert_params(stored: StorableFindings, run_params: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{**run_params, **p.values} for p in stored.params]
