"""Streak drift: the stored projection and the chain against the recomputed streaks.

All comparisons are column-wise over the merged frames; the recomputed streaks
(from the session log) are the authoritative side of both.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pandas as pd

from reconciliation_pipeline.core import repairs
from reconciliation_pipeline.core.diff import address_findings, diff_snapshots, invariant_findings
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.findings import concat_findings, findings_frame
from reconciliation_pipeline.core.snapshots import READ_ERROR
from reconciliation_pipeline.defs.streaks.spec import (
    DOMAIN,
    MISSING_PROJECTION_REPAIR,
    MISSING_PROJECTION_SEVERITY,
    PLAYER_SPEC,
    PROJECTION_FIELDS,
    PROJECTION_SPEC,
    WALLET,
    ProjectionInvariants,
)

INT_FIELDS = ("current_streak", "longest_streak", "qualified_days")
WHOLE_ROW = "*"


def _canonical(value: Any) -> str | None:
    """Text both sides agree on: ints as digits, dates as ISO, missing as None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(int(value))


def _exact_ints(values: pd.Series) -> pd.Series:
    """Python ints (None where missing) in an object column: no float ever creeps in."""
    return pd.Series([None if v is None or pd.isna(v) else int(v) for v in values], index=values.index, dtype=object)


def clean_db_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The `db_user_streaks` snapshot with exact ints and blank wallets as no wallet."""
    frame = frame.copy()
    frame["user_id"] = frame["user_id"].astype("int64")
    frame[WALLET] = pd.Series([w.strip() or None if isinstance(w, str) else None for w in frame[WALLET]],
                              index=frame.index, dtype=object)
    for column in INT_FIELDS:
        frame[column] = _exact_ints(frame[column])
    frame["has_projection"] = frame["has_projection"].astype(bool)
    return frame


def projection_findings(db: pd.DataFrame, computed: pd.DataFrame, as_of: str) -> pd.DataFrame:
    """PROJECTION_DRIFT: stored `user_streaks` values that differ from the recomputed ones.

    A participant whose sessions qualify for something but who has no projection
    row at all gets one finding for the whole row.
    """
    merged = db.merge(computed, on="user_id", suffixes=("_stored", "_computed"))
    merged = merged[merged["timezone_valid"]]
    ids = PROJECTION_SPEC.entity_ids(merged["user_id"])
    keys = merged["user_id"].astype(str)

    def details(rows: pd.DataFrame, **extra: str) -> pd.Series:
        return pd.Series([{"recomputed_from": "focus_sessions", "as_of": as_of, "timezone": tz, **extra}
                          for tz in rows["timezone_computed"]], index=rows.index, dtype=object)

    parts = []
    stored_rows = merged[merged["has_projection"]]
    for field in PROJECTION_FIELDS:
        stored = stored_rows[f"{field.name}_stored"].map(_canonical).astype(object)
        recomputed = stored_rows[f"{field.name}_computed"].map(_canonical).astype(object)
        differs = stored.fillna("") != recomputed.fillna("")
        hit = stored_rows[differs]
        delta = None
        if field.name in INT_FIELDS:
            delta = (hit[f"{field.name}_computed"].astype(object) - hit[f"{field.name}_stored"].astype(object)).astype(object)
        parts.append(
            findings_frame(
                domain=DOMAIN,
                entity_type=PROJECTION_SPEC.entity_type,
                entity_id=ids[hit.index],
                entity_key=keys[hit.index],
                field=field.name,
                drift_class=DriftClass.PROJECTION_DRIFT,
                severity=field.severity,
                db_value=stored[hit.index],
                chain_value=recomputed[hit.index],
                delta=delta,
                details=details(hit),
            )
        )
    missing = merged[~merged["has_projection"] & (merged["qualified_days_computed"] > 0)]
    parts.append(
        findings_frame(
            domain=DOMAIN,
            entity_type=PROJECTION_SPEC.entity_type,
            entity_id=ids[missing.index],
            entity_key=keys[missing.index],
            field=WHOLE_ROW,
            drift_class=DriftClass.PROJECTION_DRIFT,
            severity=MISSING_PROJECTION_SEVERITY,
            chain_value=_row_json(missing),
            details=details(missing, reason="no user_streaks row"),
        )
    )
    return concat_findings(parts)


def _row_json(rows: pd.DataFrame) -> pd.Series:
    """The recomputed projection row as canonical JSON (what the insert repair writes)."""
    columns = [f.name for f in PROJECTION_FIELDS]
    values = rows[[f"{c}_computed" for c in columns]].set_axis(columns, axis=1)
    return values.apply(
        lambda r: json.dumps({c: _canonical(r[c]) if c == "last_qualified_date" else int(r[c]) for c in columns},
                             sort_keys=True),
        axis=1,
    ) if len(rows) else pd.Series([], dtype=object)


def timezone_findings(computed: pd.DataFrame) -> pd.DataFrame:
    """INVARIANT_VIOLATION for participants whose timezone is not an IANA zone: no streak can be computed."""
    bad = computed[~computed["timezone_valid"]]
    return findings_frame(
        domain=DOMAIN,
        entity_type=PROJECTION_SPEC.entity_type,
        entity_id=PROJECTION_SPEC.entity_ids(bad["user_id"]),
        entity_key=bad["user_id"].astype(str),
        field="timezone",
        drift_class=DriftClass.INVARIANT_VIOLATION,
        severity=Severity.WARN,
        db_value=bad["timezone"].astype(object),
        details=pd.Series([{"reason": "not an IANA timezone the tz database knows; streaks cannot be computed"}]
                          * len(bad), index=bad.index, dtype=object),
    )


def stored_invariant_findings(db: pd.DataFrame) -> pd.DataFrame:
    """INVARIANT_VIOLATION for stored projection rows that contradict themselves."""
    stored = db[db["has_projection"]]
    return invariant_findings(PROJECTION_SPEC, ProjectionInvariants, stored, side="database",
                              severity=PROJECTION_SPEC.db_invariant_severity)


def player_frame(db: pd.DataFrame, computed: pd.DataFrame) -> pd.DataFrame:
    """Participants with a wallet, their recomputed current streak and whether it can be compared."""
    players = db[db[WALLET].notna()][["user_id", WALLET]].merge(
        computed[["user_id", "timezone_valid", "current_streak"]], on="user_id"
    )
    counts = players.groupby(WALLET)[WALLET].transform("size")
    players["shared_wallet"] = counts > 1
    return players.reset_index(drop=True)


def shared_wallet_findings(players: pd.DataFrame) -> pd.DataFrame:
    """INVARIANT_VIOLATION for a wallet several participants claim: its streak is ambiguous."""
    shared = players[players["shared_wallet"]]
    owners = shared.groupby(WALLET)["user_id"].agg(lambda ids: ",".join(f"user_{i}" for i in sorted(ids)))
    return findings_frame(
        domain=DOMAIN,
        entity_type=PLAYER_SPEC.entity_type,
        entity_id=PLAYER_SPEC.entity_ids(pd.Series(owners.index, dtype=object)),
        entity_key=pd.Series(owners.index, dtype=object),
        field=WALLET,
        drift_class=DriftClass.INVARIANT_VIOLATION,
        severity=Severity.WARN,
        db_value=pd.Series(owners.to_numpy(), dtype=object),
        details=pd.Series([{"reason": "several participants share this wallet; it is neither compared nor synced"}]
                          * len(owners), dtype=object),
    )


def comparable_players(players: pd.DataFrame, valid_wallet: pd.Series) -> pd.DataFrame:
    """Players whose chain entry is read and compared: a valid, unshared wallet and a computed streak."""
    keep = players["timezone_valid"] & ~players["shared_wallet"] & valid_wallet
    return players[keep][["user_id", WALLET, "current_streak"]].reset_index(drop=True)


def chain_findings(players: pd.DataFrame, compared: pd.DataFrame, chain: pd.DataFrame) -> pd.DataFrame:
    """INVALID_ADDRESS, MISSING_ON_CHAIN, CHAIN_READ_ERROR and VALUE_MISMATCH for players."""
    invalid, _ = address_findings(PLAYER_SPEC, players)
    drift = diff_snapshots(PLAYER_SPEC, compared[[WALLET, "current_streak"]], chain)
    found = concat_findings([invalid, drift])
    if found.empty:
        return found
    owner = dict(zip(players[WALLET], players["user_id"], strict=True))
    found["details"] = [
        {**details, "user_id": int(owner[key])} if key in owner else details
        for key, details in zip(found["entity_key"], found["details"], strict=True)
    ]
    return found


def checked_entities(computed: pd.DataFrame, compared: pd.DataFrame, chain: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(entity_type, entity_id) compared this run, and how many entities could not be."""
    valid = computed[computed["timezone_valid"]]
    unreadable = set(chain.loc[chain["read_status"] == READ_ERROR, WALLET]) if len(chain) else set()
    wallets = pd.Series([w for w in compared[WALLET] if w not in unreadable], dtype=object)
    checked = pd.concat(
        [
            pd.DataFrame({"entity_type": PROJECTION_SPEC.entity_type,
                          "entity_id": PROJECTION_SPEC.entity_ids(valid["user_id"]).astype(object)}),
            pd.DataFrame({"entity_type": PLAYER_SPEC.entity_type, "entity_id": PLAYER_SPEC.entity_ids(wallets)}),
        ],
        ignore_index=True,
    )
    return checked, len(unreadable) + int((~computed["timezone_valid"]).sum())


def plan_projection_repairs(findings: pd.DataFrame) -> pd.DataFrame:
    """Repairs of `user_streaks` toward the recomputed values, in `core.repairs` plan form.

    `core.repairs.plan_repairs` only plans toward a chain authority; here the
    authority is the session log, so the plan is built here and applied by
    `core.repairs.apply_plan` (compare-and-swap, audit, idempotency) as usual.
    """
    wanted = findings[(findings["drift_class"] == DriftClass.PROJECTION_DRIFT.value)
                      & (findings["entity_type"] == PROJECTION_SPEC.entity_type)]
    if wanted.empty:
        return pd.DataFrame(columns=list(repairs.PLAN_COLUMNS), dtype=object)
    queries = {f.name: f.repair_query for f in PROJECTION_FIELDS} | {WHOLE_ROW: MISSING_PROJECTION_REPAIR}
    plan = pd.DataFrame(
        {
            "entity_type": wanted["entity_type"],
            "entity_id": wanted["entity_id"],
            "entity_key": wanted["entity_key"],
            "field": wanted["field"],
            "repair_query": wanted["field"].map(queries),
            "observed_value": wanted["db_value"],
            "target_value": wanted["chain_value"],
        },
        dtype=object,
    )
    plan.insert(
        0,
        "idempotency_key",
        [
            repairs.idempotency_key(DOMAIN, t, k, f, "" if o is None else o, "" if v is None else v)
            for t, k, f, o, v in zip(plan["entity_type"], plan["entity_key"], plan["field"],
                                     plan["observed_value"], plan["target_value"], strict=True)
        ],
    )
    return plan.reset_index(drop=True)


def sync_candidates(findings: pd.DataFrame) -> pd.DataFrame:
    """Registered players whose on-chain current streak differs from the recomputed one."""
    mismatch = findings[(findings["entity_type"] == PLAYER_SPEC.entity_type)
                        & (findings["drift_class"] == DriftClass.VALUE_MISMATCH.value)
                        & (findings["field"] == "current_streak")]
    if mismatch.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "player": pd.Series(dtype=object),
                             "streak": pd.Series(dtype=object), "chain_value": pd.Series(dtype=object)})
    return pd.DataFrame(
        {
            "user_id": mismatch["details"].map(lambda d: d.get("user_id")).astype(object),
            "player": mismatch["entity_key"].astype(object),
            "streak": mismatch["db_value"].map(int).astype(object),
            "chain_value": mismatch["chain_value"].map(int).astype(object),
        }
    ).sort_values("player").reset_index(drop=True)
