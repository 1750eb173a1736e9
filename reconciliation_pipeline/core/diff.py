"""The vectorised diff: a keyed outer merge and column-wise comparisons.

No Python loop over rows here: each drift class is one boolean mask over the
merged frame, and each compared field is one column operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
import pandera.pandas as pa

from reconciliation_pipeline.chain.addresses import valid_address_mask
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from reconciliation_pipeline.core.findings import concat_findings, empty_findings, findings_frame
from reconciliation_pipeline.core.results import ChainSnapshot, Checked
from reconciliation_pipeline.core.run_budget import not_read_mask
from reconciliation_pipeline.core.snapshots import (
    READ_ERROR,
    READ_MISSING,
    READ_OK,
    READ_UNCHANGED,
    data_key_ledger_keys,
)
from reconciliation_pipeline.core.spec import Comparison, DataKey, Entity, InstanceOf, PerRow, Setting

_DB = "_db"
_CHAIN = "_chain"


class Identified(Protocol):
    """What names the findings about a frame's rows: a source or an entity."""

    entity_type: str

    def entity_ids(self, keys: pd.Series) -> pd.Series: ...


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


def address_findings(
    identity: Identified, key_column: str, db: pd.DataFrame, columns: tuple[str, ...], severity: Severity,
    *, allow_muxed: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """INVALID_ADDRESS findings for the database side; also the per-column validity masks."""
    masks = pd.DataFrame(index=db.index)
    parts = []
    reason = "not a valid G..., M... or C... address" if allow_muxed else "not a valid G... or C... address"
    for column in columns:
        valid = valid_address_mask(db[column], allow_muxed=allow_muxed)
        masks[column] = valid
        bad = db[~valid]
        parts.append(
            findings_frame(
                domain="",
                entity_type=identity.entity_type,
                entity_id=identity.entity_ids(bad[key_column]),
                entity_key=bad[key_column].astype(str),
                field=column,
                drift_class=DriftClass.INVALID_ADDRESS,
                severity=severity,
                db_value=bad[column].astype(object),
                details=pd.Series([{"reason": reason}] * len(bad), index=bad.index),
            )
        )
    return concat_findings(parts), masks


def resolve_tolerances(entity: Entity, settings: Any) -> dict[str, int]:
    """Each compared field's tolerance in base units, `Setting`s read from the settings resource."""
    return {f.name: int(getattr(settings, f.tolerance.name)) if isinstance(f.tolerance, Setting) else f.tolerance
            for f in entity.compared}


def entry_ledger_keys(entity: Entity, contract_id: str | None, chain: pd.DataFrame) -> pd.Series:
    """Each row's ledger key: the snapshot keeps it for rows with a problem and it is rebuilt
    for decoded rows of a `DataKey` entity from the contract the snapshot read."""
    kept = chain["ledger_key"]
    if contract_id is None or not isinstance(entity.key_source, DataKey) or kept.notna().all():
        return kept
    missing = kept.isna()
    rebuilt = data_key_ledger_keys(entity.key_source, entity.kind, contract_id, list(chain.loc[missing, entity.key]))
    return kept.astype(object).mask(missing, pd.Series(rebuilt, index=chain.index[missing], dtype=object))


def diff_snapshots(
    entity: Entity,
    db: pd.DataFrame,
    chain: pd.DataFrame,
    *,
    contract_id: str | None = None,
    tolerances: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Findings between a database snapshot and a chain snapshot of one entity type."""
    key = entity.key
    tolerance = tolerances if tolerances is not None else resolve_tolerances(entity, None)
    address_found, address_valid = address_findings(entity, key, db, entity.address_columns,
                                                    entity.invalid_address_severity,
                                                    allow_muxed=entity.muxed_accounts)
    db = db.join(address_valid.add_prefix("_valid_"))

    merged = db.merge(chain, on=key, how="outer", suffixes=(_DB, _CHAIN), indicator=True)
    status = merged["read_status"]
    in_db = merged["_merge"] != "right_only"
    in_chain_frame = merged["_merge"] != "left_only"
    parts = [address_found]

    def whole_entity(rows: pd.DataFrame, drift_class: DriftClass, severity: Severity, details: pd.Series,
                     field: str = WHOLE_ENTITY) -> pd.DataFrame:
        return findings_frame(domain="", entity_type=entity.entity_type, entity_id=entity.entity_ids(rows[key]),
                              entity_key=rows[key].astype(str), field=field, drift_class=drift_class,
                              severity=severity, ledger_sequence=_ledger(rows), details=details)

    missing_on_chain = merged[in_db & ((status == READ_MISSING) | ~in_chain_frame)]
    missing_details = _details(missing_on_chain, {"ledger_key": "ledger_key"})
    if entity.missing.reason is not None:
        missing_details = missing_details.map(lambda d: {**d, "reason": entity.missing.reason})
    parts.append(whole_entity(missing_on_chain, DriftClass.MISSING_ON_CHAIN, entity.missing_severity,
                              missing_details, field=entity.missing.field))

    missing_in_db = merged[~in_db & (status == READ_OK)]
    missing_in_db = missing_in_db.assign(ledger_key=entry_ledger_keys(entity, contract_id, missing_in_db))
    parts.append(whole_entity(missing_in_db, DriftClass.MISSING_IN_DB, entity.missing_severity, _details(
        missing_in_db, {"ledger_key": "ledger_key", "last_modified_ledger": "last_modified_ledger"})))

    unreadable = merged[status == READ_ERROR]
    parts.append(whole_entity(unreadable, DriftClass.CHAIN_READ_ERROR, entity.read_error_severity, _details(
        unreadable, {"error": "read_error", "raw_xdr": "raw_xdr", "ledger_key": "ledger_key"})))

    both = merged[in_db & (status == READ_OK)]
    for compared in entity.compared:
        db_values = both[compared.name + _DB]
        chain_values = both[compared.name + _CHAIN]
        delta: Any = None
        if compared.comparison is Comparison.AMOUNT:
            delta_all = chain_values - db_values
            differs = delta_all.abs() > tolerance[compared.name]
            delta = delta_all
        else:
            differs = db_values.astype(object) != chain_values.astype(object)
            if compared.comparison is Comparison.ADDRESS and compared.name in entity.address_columns:
                differs &= both["_valid_" + compared.name].astype(bool)
        hit = both[differs.astype(bool)]
        parts.append(
            findings_frame(
                domain="",
                entity_type=entity.entity_type,
                entity_id=entity.entity_ids(hit[key]),
                entity_key=hit[key].astype(str),
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


DEFAULT_TTL_WARNING_LEDGERS = 120_960
"""About 7 days of ledgers (TTL_WARNING_LEDGERS)."""
SECONDS_PER_LEDGER = 5
"""For estimates only: ledgers close about every 5 to 6 seconds."""
TTL_FIELD = "live_until_ledger"


def _estimate(ledgers: pd.Series) -> list[str]:
    """The moment `ledgers` ledgers after the read ledger (which closed about when the run read it),
    as ISO text, at SECONDS_PER_LEDGER."""
    now = pd.Timestamp.now(tz="UTC")
    return [(now + pd.Timedelta(seconds=int(n) * SECONDS_PER_LEDGER)).isoformat(timespec="seconds") for n in ledgers]


def ttl_findings(entity: Entity, chain: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """ARCHIVED and TTL_EXPIRING findings of the entries read (decoded or left unchanged).

    Since protocol 23 a persistent entry whose TTL ran out is archived, not deleted: the RPC still
    returns it, with `liveUntilLedgerSeq` behind the ledger it was read at, or 0 once it is in the
    hot archive. The contract cannot touch it until someone restores it, so it is a finding of its
    own (its values are still compared). A live entry whose TTL ends within `horizon` ledgers is
    TTL_EXPIRING, so the app can extend it. Entries without a TTL (classic trustlines) have neither.
    """
    read = chain[chain["read_status"].isin([READ_OK, READ_UNCHANGED]) & chain["live_until_ledger"].notna()
                 & chain["ledger_sequence"].notna()]
    if read.empty:
        return empty_findings()
    live_until = read["live_until_ledger"].astype("int64")
    read_at = read["ledger_sequence"].astype("int64")
    archived = (live_until == 0) | (live_until < read_at)
    expiring = ~archived & (live_until - read_at <= horizon)
    parts = []
    for mask, drift_class in ((archived, DriftClass.ARCHIVED), (expiring, DriftClass.TTL_EXPIRING)):
        rows = read[mask]
        if rows.empty:
            continue
        until, at = live_until[mask], read_at[mask]
        if drift_class is DriftClass.ARCHIVED:
            when = _estimate(until.where(until > 0, at) - at)
            details = pd.Series([
                {"live_until_ledger": int(u), "read_at_ledger": int(a), "last_modified_ledger": _json_safe(m),
                 **({"expired_ledgers_ago": int(a - u), "expired_at_estimated": w} if u > 0 else
                    {"archived": "in the hot archive: the RPC returns 0 in place of the ledger it expired at"}),
                 "action": "restore the entry (RestoreFootprint) before the contract can use it"}
                for u, a, m, w in zip(until, at, rows["last_modified_ledger"], when, strict=True)],
                index=rows.index, dtype=object)
            severity = entity.archived_severity
        else:
            when = _estimate(until - at)
            details = pd.Series([
                {"live_until_ledger": int(u), "read_at_ledger": int(a), "ledgers_left": int(u - a),
                 "expires_at_estimated": w, "warning_ledgers": horizon, "last_modified_ledger": _json_safe(m),
                 "action": "extend the entry's TTL (ExtendFootprintTTL)"}
                for u, a, m, w in zip(until, at, rows["last_modified_ledger"], when, strict=True)],
                index=rows.index, dtype=object)
            severity = Severity.WARN
        parts.append(findings_frame(
            entity_type=entity.entity_type, entity_id=entity.entity_ids(rows[entity.key]),
            entity_key=rows[entity.key].astype(str), field=TTL_FIELD, drift_class=drift_class, severity=severity,
            chain_value=until.astype(str).astype(object), ledger_sequence=rows["ledger_sequence"], details=details))
    return concat_findings(parts)


def key_address_column(entity: Entity) -> str | None:
    """The database column whose address the entity's ledger key is built from, if any."""
    if isinstance(entity.key_source, InstanceOf | PerRow):
        return entity.key_source.column
    if entity.kind.value == "address":
        return entity.key
    return None


@dataclass(frozen=True)
class EntityDiff:
    """One entity's findings and, by key, what they settled."""

    findings: pd.DataFrame
    compared_keys: pd.Series
    """Keys compared (their incidents may resolve), invalid-address rows included."""
    missed_keys: pd.Series
    """Keys known but not checked: read errors, then keys not read at the time limit."""
    not_read: int

    def checked(self, entity: Entity) -> Checked:
        return Checked.of(entity.entity_type, entity.entity_ids(self.compared_keys), len(self.missed_keys),
                          self.not_read, unchecked_ids=entity.entity_ids(self.missed_keys))


def diff_entity_keys(
    entity: Entity, db: pd.DataFrame, chain: ChainSnapshot, tolerances: Mapping[str, int],
    ttl_warning_ledgers: int = DEFAULT_TTL_WARNING_LEDGERS,
) -> EntityDiff:
    """One entity's findings and the keys it settled.

    Rows whose ledger key needs an address that is invalid were never read: they are
    INVALID_ADDRESS on that column (and checked: that is what they are). Entries left
    `unchanged` (an incremental skip) are in neither side, but their TTL is still read:
    an unchanged entry can expire; entries not read before the run's time limit are not
    checked, which is different from any finding. The chain side's invariants are not
    validated here: the chain step validated them once.
    """
    key = entity.key
    frame = chain.frame
    unread = not_read_mask(frame)
    unchanged = frame["read_status"] == READ_UNCHANGED
    skipped = frame.loc[unread | unchanged, key]
    compared_chain = frame[~unread & ~unchanged]
    invalid = db[key].isin(chain.not_read_invalid)
    compared_db = db[~invalid & ~db[key].isin(skipped)]

    address_column = key_address_column(entity)
    invalid_found = empty_findings()
    if address_column is not None and invalid.any():
        invalid_found, _ = address_findings(entity, key, db[invalid], (address_column,),
                                            entity.invalid_address_severity)
    parts = [invalid_found, diff_snapshots(entity, compared_db, compared_chain, contract_id=chain.contract_id,
                                           tolerances=tolerances), ttl_findings(entity, frame[~unread], ttl_warning_ledgers)]
    errors = compared_chain.loc[compared_chain["read_status"] == READ_ERROR, key]
    keys = pd.Index(compared_db[key]).union(pd.Index(compared_chain[key])).difference(pd.Index(errors))
    compared = pd.concat([pd.Series(keys, dtype=object), db.loc[invalid, key].astype(object)], ignore_index=True)
    missed = pd.concat([errors, frame.loc[unread, key]], ignore_index=True).astype(object)
    return EntityDiff(concat_findings(parts), compared, missed, int(unread.sum()))


def diff_entity(
    entity: Entity, db: pd.DataFrame, chain: ChainSnapshot, tolerances: Mapping[str, int],
    ttl_warning_ledgers: int = DEFAULT_TTL_WARNING_LEDGERS,
) -> tuple[pd.DataFrame, Checked]:
    """One entity's findings and the entities it settled (`diff_entity_keys`)."""
    diff = diff_entity_keys(entity, db, chain, tolerances, ttl_warning_ledgers)
    return diff.findings, diff.checked(entity)


def invariant_findings(
    identity: Identified,
    key_column: str,
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
        entity_keys = rows[key_column].iloc[subset["index"].to_numpy()].set_axis(subset.index)
        parts.append(
            findings_frame(
                domain="",
                entity_type=identity.entity_type,
                entity_id=identity.entity_ids(entity_keys),
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
