"""The vectorised diff: a keyed outer merge and column-wise comparisons.

No Python loop over rows here: each drift class is one boolean mask over the
merged frame, and each compared field is one column operation.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa

from reconciliation_pipeline.chain.addresses import valid_address_mask
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from reconciliation_pipeline.core.findings import concat_findings, empty_findings, findings_frame
from reconciliation_pipeline.core.snapshots import READ_ERROR, READ_MISSING, READ_OK, entry_ledger_keys
from reconciliation_pipeline.core.spec import Comparison, ReconSpec

_DB = "_db"
_CHAIN = "_chain"


def _text(values: pd.Series) -> pd.Series:
    """Canonical text of values (ints exactly, None kept)."""
    return values.map(lambda v: None if v is None else str(v))


def _details(frame: pd.DataFrame, columns: dict[str, str]) -> pd.Series:
    """A details dict per row from the given {detail name: frame column}."""
    if frame.empty:
        return pd.Series([], dtype=object)
    parts = {name: frame[column].astype(object) for name, column in columns.items()}
    return pd.DataFrame(parts, index=frame.index).apply(
        lambda row: {k: _json_safe(v) for k, v in row.items() if not _is_missing(v)},
        axis=1,
    )


def _is_missing(value: Any) -> bool:
    """None or NaN: an outer merge fills absent columns with NaN, which JSON cannot hold."""
    return value is None or (isinstance(value, float) and value != value)


def _json_safe(value: Any) -> Any:
    """Ints beyond 2**53 as text, so no JSON reader rounds them."""
    return str(value) if isinstance(value, int) and abs(value) >= 2**53 else value


def _ledger(frame: pd.DataFrame) -> pd.Series:
    return frame["ledger_sequence"] if "ledger_sequence" in frame else pd.Series(None, index=frame.index)


def address_findings(spec: ReconSpec, db: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """INVALID_ADDRESS findings for the database side; also the per-column validity masks."""
    masks = pd.DataFrame(index=db.index)
    parts = []
    for column in spec.address_columns:
        valid = valid_address_mask(db[column])
        masks[column] = valid
        bad = db[~valid]
        parts.append(
            findings_frame(
                domain=spec.domain,
                entity_type=spec.entity_type,
                entity_id=spec.entity_ids(bad[spec.key_column]),
                entity_key=bad[spec.key_column].astype(str),
                field=column,
                drift_class=DriftClass.INVALID_ADDRESS,
                severity=spec.invalid_address_severity,
                db_value=bad[column].astype(object),
                details=pd.Series([{"reason": "not a valid G... or C... address"}] * len(bad), index=bad.index),
            )
        )
    return concat_findings(parts), masks


def diff_snapshots(spec: ReconSpec, db: pd.DataFrame, chain: pd.DataFrame) -> pd.DataFrame:
    """Findings between a database snapshot and a chain snapshot of one entity type."""
    key = spec.key_column
    address_found, address_valid = address_findings(spec, db)
    db = db.join(address_valid.add_prefix("_valid_"))

    merged = db.merge(chain, on=key, how="outer", suffixes=(_DB, _CHAIN), indicator=True)
    status = merged["read_status"]
    in_db = merged["_merge"] != "right_only"
    in_chain_frame = merged["_merge"] != "left_only"
    ids = spec.entity_ids(merged[key])
    keys = merged[key].astype(str)
    parts = [address_found]

    missing_on_chain = merged[in_db & ((status == READ_MISSING) | ~in_chain_frame)]
    parts.append(
        findings_frame(
            domain=spec.domain,
            entity_type=spec.entity_type,
            entity_id=ids[missing_on_chain.index],
            entity_key=keys[missing_on_chain.index],
            field=WHOLE_ENTITY,
            drift_class=DriftClass.MISSING_ON_CHAIN,
            severity=spec.missing_severity,
            ledger_sequence=_ledger(missing_on_chain),
            details=_details(missing_on_chain, {"ledger_key": "ledger_key"}),
        )
    )

    missing_in_db = merged[~in_db & (status == READ_OK)]
    missing_in_db = missing_in_db.assign(
        ledger_key=entry_ledger_keys(spec, chain.attrs.get("contract_id"), missing_in_db))
    parts.append(
        findings_frame(
            domain=spec.domain,
            entity_type=spec.entity_type,
            entity_id=ids[missing_in_db.index],
            entity_key=keys[missing_in_db.index],
            field=WHOLE_ENTITY,
            drift_class=DriftClass.MISSING_IN_DB,
            severity=spec.missing_severity,
            ledger_sequence=_ledger(missing_in_db),
            details=_details(
                missing_in_db,
                {"ledger_key": "ledger_key", "last_modified_ledger": "last_modified_ledger"},
            ),
        )
    )

    unreadable = merged[status == READ_ERROR]
    parts.append(
        findings_frame(
            domain=spec.domain,
            entity_type=spec.entity_type,
            entity_id=ids[unreadable.index],
            entity_key=keys[unreadable.index],
            field=WHOLE_ENTITY,
            drift_class=DriftClass.CHAIN_READ_ERROR,
            severity=spec.read_error_severity,
            ledger_sequence=_ledger(unreadable),
            details=_details(
                unreadable,
                {"error": "read_error", "raw_xdr": "raw_xdr", "ledger_key": "ledger_key"},
            ),
        )
    )

    both = merged[in_db & (status == READ_OK)]
    for compared in spec.compared:
        db_values = both[compared.name + _DB]
        chain_values = both[compared.name + _CHAIN]
        delta: Any = None
        if compared.comparison is Comparison.AMOUNT:
            delta_all = chain_values - db_values
            differs = delta_all.abs() > compared.tolerance
            delta = delta_all
        else:
            differs = db_values.astype(object) != chain_values.astype(object)
            if compared.comparison is Comparison.ADDRESS and compared.name in spec.address_columns:
                differs &= both["_valid_" + compared.name].astype(bool)
        hit = both[differs.astype(bool)]
        parts.append(
            findings_frame(
                domain=spec.domain,
                entity_type=spec.entity_type,
                entity_id=ids[hit.index],
                entity_key=keys[hit.index],
                field=compared.name,
                drift_class=compared.drift_class,
                severity=compared.severity,
                db_value=_text(hit[compared.name + _DB]),
                chain_value=_text(hit[compared.name + _CHAIN]),
                delta=delta[hit.index] if delta is not None else None,
                ledger_sequence=_ledger(hit),
                details=_details(hit, {"last_modified_ledger": "last_modified_ledger"}),
            )
        )
    return concat_findings(parts)


def invariant_findings(
    spec: ReconSpec,
    model: type[pa.DataFrameModel],
    frame: pd.DataFrame,
    *,
    side: str,
    severity: Severity,
) -> pd.DataFrame:
    """INVARIANT_VIOLATION findings from a lazy pandera validation of one side.

    A column check yields a finding on that column; a dataframe-wide check
    (e.g. released <= total) yields one finding named after the check, with the
    values of the columns it declares (`columns=(...)` on the check) in `details`.
    """
    if frame.empty:
        return empty_findings()
    rows = frame.reset_index(drop=True)
    try:
        model.validate(rows, lazy=True)
        return empty_findings()
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    cases = cases[cases["index"].notna()].copy()
    cases["index"] = cases["index"].astype(int)
    is_wide = cases["schema_context"] == "DataFrameSchema"
    column_cases = cases[~is_wide].drop_duplicates(["index", "column", "check"])
    involved = {c.name: c.statistics.get("columns") for c in model.to_schema().checks}
    wide = cases[is_wide]
    declared = pd.Series(
        [involved.get(check) is None or column in involved[check]
         for check, column in zip(wide["check"], wide["column"], strict=True)],
        index=wide.index,
        dtype=bool,
    )
    wide = wide[declared]
    wide_cases = wide.drop_duplicates(["index", "check"]).copy()
    wide_values = wide.groupby(["index", "check"]).apply(
        lambda g: {str(c): str(v) for c, v in zip(g["column"], g["failure_case"], strict=True)},
        include_groups=False,
    )
    wide_cases["values"] = [wide_values[(i, c)] for i, c in zip(wide_cases["index"], wide_cases["check"], strict=True)]

    value_column = "db_value" if side == "database" else "chain_value"
    parts = []
    for subset, field, value, details in (
        (
            column_cases,
            column_cases["column"],
            column_cases["failure_case"].map(str),
            column_cases["check"].map(lambda c: {"check": c, "side": side}),
        ),
        (
            wide_cases,
            wide_cases["check"],
            wide_cases["values"].map(lambda v: " ".join(f"{k}={x}" for k, x in sorted(v.items()))),
            wide_cases.apply(lambda r: {"check": r["check"], "side": side, "values": r["values"]}, axis=1)
            if len(wide_cases)
            else pd.Series([], dtype=object),
        ),
    ):
        if subset.empty:
            continue
        entity_keys = rows[spec.key_column].iloc[subset["index"].to_numpy()].set_axis(subset.index)
        parts.append(
            findings_frame(
                domain=spec.domain,
                entity_type=spec.entity_type,
                entity_id=spec.entity_ids(entity_keys),
                entity_key=entity_keys.astype(str),
                field=field.astype(object),
                drift_class=DriftClass.INVARIANT_VIOLATION,
                severity=severity,
                ledger_sequence=rows["ledger_sequence"].iloc[subset["index"].to_numpy()].set_axis(subset.index)
                if "ledger_sequence" in rows
                else None,
                details=details,
                **{value_column: value},
            )
        )
    return concat_findings(parts)
