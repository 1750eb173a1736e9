"""What is truly streaks-specific: the truth recomputed from the session log, the projection
compared with it, and the chain synced toward it.

The recomputed streaks (`engine.py`) are the authoritative side of both
comparisons; everything here is column-wise over merged frames. Partitions and
time: the newest daily partition is the live one. Its runs (the nightly job,
and the sensor's runs for changed users) compute streaks as of the moment the
run starts and may repair the projection and sync the chain. An older
partition is a backfill: streaks are recomputed as of that date in each user's
own timezone, which reproduces that day exactly, and nothing is compared or
written (today's projection and chain say nothing about that day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from reconciliation_pipeline.core import repairs, sql
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.findings import concat_findings, empty_findings, findings_frame
from reconciliation_pipeline.core.json_text import to_json
from reconciliation_pipeline.core.metadata import frame_metadata, markdown_table
from reconciliation_pipeline.core.results import Checked, DomainInputs, ExtraFindings, StepContext, StepResult
from reconciliation_pipeline.core.spec import Step
from reconciliation_pipeline.defs.streaks.engine import compute_streaks
from reconciliation_pipeline.defs.streaks.sync import ATTEMPT_COLUMNS, SyncTarget, sync_players

DOMAIN = "streaks"
SOURCE = "user_streaks"
PROJECTION_ENTITY = "user_streak"
PLAYER_ENTITY = "player"
WALLET = "wallet_address"
INT_FIELDS = ("current_streak", "longest_streak", "qualified_days")
WHOLE_ROW = "*"
ORACLE_POOL = "streak_oracle"
"""Concurrency pool of the sync: limit it to 1 so two runs never send for the oracle at once."""


@dataclass(frozen=True)
class ProjectionField:
    name: str
    severity: Severity
    repair_query: str


PROJECTION_FIELDS: tuple[ProjectionField, ...] = (
    ProjectionField("current_streak", Severity.WARN, "repairs/streaks/current_streak.sql"),
    ProjectionField("longest_streak", Severity.INFO, "repairs/streaks/longest_streak.sql"),
    ProjectionField("last_qualified_date", Severity.INFO, "repairs/streaks/last_qualified_date.sql"),
    ProjectionField("qualified_days", Severity.INFO, "repairs/streaks/qualified_days.sql"),
)
"""Projection columns compared with the recomputed streaks, and the CAS UPDATE repairing each."""

MAX_SESSION = timedelta(hours=48)
"""Longer than this a focus session is implausible (a clock or client bug), not focus. A session may
cross a whole local day (the engine splits it at each midnight); one longer than two days is not one
a user sat through."""
SESSION_FIELD = "focus_sessions"
SAMPLE_SESSIONS = 20
"""Implausible sessions listed in one user's finding (the count is always whole)."""

MISSING_PROJECTION_REPAIR = "repairs/streaks/missing_projection.sql"
MISSING_PROJECTION_SEVERITY = Severity.WARN


# -- when streaks are evaluated ---------------------------------------------------


@dataclass(frozen=True)
class AsOf:
    """When streaks are evaluated: an instant (the live run's start) or a past date (a backfill)."""

    value: datetime | date

    @property
    def live(self) -> bool:
        return isinstance(self.value, datetime)

    @property
    def label(self) -> str:
        return self.value.isoformat() if self.live else f"{self.value.isoformat()} (each user's local day)"

    @property
    def sessions_cutoff(self) -> datetime:
        """No session starting at or after this instant can count for anyone."""
        if isinstance(self.value, datetime):
            return self.value
        # Every zone's midnight ending day D falls before D + 2 at 00:00 UTC.
        return datetime.combine(self.value, time(0), UTC) + timedelta(days=2)


def resolve_as_of(window: dg.TimeWindow, now: datetime) -> AsOf:
    """The newest partition (its day ended less than a day ago) is live; older ones are backfills."""
    return AsOf(now if now < window.end + timedelta(days=1) else window.start.date())


# -- the truth: streaks recomputed from the session log --------------------------------


@dataclass(frozen=True)
class StreakTruth:
    """Each participant's streaks recomputed from the session log, and the players with a wallet."""

    as_of: AsOf
    streaks: pd.DataFrame
    players: pd.DataFrame
    """Participants with a wallet: user_id, wallet, computable, current_streak, shared_wallet."""
    implausible: pd.DataFrame
    """Sessions the log cannot be believed about: session_id, user_id, started_at, ended_at, reason."""

    @property
    def frame(self) -> pd.DataFrame:
        """The players compared with the chain: a computable streak and a wallet nobody else claims."""
        players = self.players
        compared = players[players["computable"] & ~players["shared_wallet"]]
        return compared[["user_id", WALLET, "current_streak"]].reset_index(drop=True)


def player_frame(db: pd.DataFrame, computed: pd.DataFrame) -> pd.DataFrame:
    """Participants with a wallet, their recomputed current streak and whether their wallet is shared."""
    players = db[db[WALLET].notna()][["user_id", WALLET]].merge(
        computed[["user_id", "computable", "current_streak"]], on="user_id"
    )
    counts = players.groupby(WALLET)[WALLET].transform("size")
    players["shared_wallet"] = counts > 1
    return players.reset_index(drop=True)


def split_sessions(sessions: pd.DataFrame, as_of: AsOf) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sessions the engine may count, implausible sessions with their reason).

    Implausible: it ends before it starts, lasts longer than MAX_SESSION, or has no end although
    it started more than MAX_SESSION before the evaluation. A session without an end that started
    more recently is in progress: it counts once it ends, and is no finding.
    """
    started = pd.to_datetime(sessions["started_at"], utc=True)
    ended = pd.to_datetime(sessions["ended_at"], utc=True)
    cutoff = pd.Timestamp(as_of.sessions_cutoff)
    open_ended = ended.isna()
    reasons = pd.Series([None] * len(sessions), index=sessions.index, dtype=object)
    reasons[open_ended & (started < cutoff - MAX_SESSION)] = "has no end, and started more than 48 h before"
    reasons[~open_ended & (ended < started)] = "ends before it starts"
    too_long = ~open_ended & (ended - started > MAX_SESSION)
    reasons[too_long] = [f"lasts {duration}, longer than 48 h" for duration in (ended - started)[too_long]]
    implausible = sessions[reasons.notna()].assign(reason=reasons[reasons.notna()])
    return sessions[~open_ended & reasons.isna()].reset_index(drop=True), implausible.reset_index(drop=True)


def recompute(ctx: StepContext, inputs: DomainInputs) -> StepResult:
    """The truth about each participant's streaks, from the immutable focus-session log."""
    assert ctx.partition_window is not None
    snapshot = inputs.sources[SOURCE]
    db = snapshot.frame
    as_of = resolve_as_of(ctx.partition_window, datetime.now(UTC))
    scope = [int(k) for k in snapshot.only_keys] if snapshot.only_keys is not None else None
    with ctx.engine.connect() as connection:
        result = connection.execute(sql.query("snapshots/streaks/focus_sessions.sql"),
                                    {"cutoff": as_of.sessions_cutoff, "user_ids": scope})
        sessions = pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)
    counted, implausible = split_sessions(sessions, as_of)
    users = db[["user_id", "timezone"]].astype({"user_id": "int64"})
    streaks = compute_streaks(counted, users, as_of=as_of.value,
                              qualifying_minutes=ctx.settings.streak_qualifying_minutes)
    streaks["user_id"] = streaks["user_id"].astype(db["user_id"].dtype)
    # A user whose log holds an implausible session has no believable streak: not compared,
    # repaired or synced until the log is fixed.
    doubtful = streaks["user_id"].astype("int64").isin(implausible["user_id"].astype("int64"))
    streaks["computable"] = streaks["timezone_valid"] & ~doubtful
    truth = StreakTruth(as_of=as_of, streaks=streaks, players=player_frame(db, streaks), implausible=implausible)
    valid = streaks[streaks["computable"]]
    return StepResult(value=truth, metadata={
        **frame_metadata(streaks),
        "as_of": as_of.label,
        "live": as_of.live,
        "scope": "all participants" if scope is None else f"{len(scope)} changed users",
        "sessions_read": len(sessions),
        "sessions_in_progress": int(sessions["ended_at"].isna().sum()) - int(
            (implausible["ended_at"].isna()).sum()),
        "sessions_implausible": len(implausible),
        "users_with_implausible_sessions": int(doubtful.sum()),
        "qualifying_minutes": ctx.settings.streak_qualifying_minutes,
        "users_with_current_streak": int((valid["current_streak"] > 0).sum()),
        "users_with_unknown_timezone": int((~streaks["timezone_valid"]).sum()),
        "users_without_wallet": int(db[WALLET].isna().sum()),
        "users_without_projection": int((~db["has_projection"].astype(bool)).sum()),
    })


COMPUTED = Step(
    name="computed_user_streaks",
    run=recompute,
    inputs=("db_user_streaks",),
    description="The truth about each participant's streaks, recomputed from the immutable focus-session log "
    "(late sessions included) in their own timezone: current streak, longest streak, last qualified day and "
    "number of qualified days.",
)


# -- hooks ------------------------------------------------------------------------------


def _truth(inputs: DomainInputs) -> StreakTruth:
    return inputs.steps[COMPUTED.name]


def recompute_only(ctx: StepContext, inputs: DomainInputs) -> str | None:
    """A backfill recomputes the day and compares nothing: today's projection and chain say
    nothing about that day."""
    as_of = _truth(inputs).as_of
    return None if as_of.live else f"backfill as of {as_of.label}: recomputed only; live runs compare and write"


def _canonical(value: Any) -> str | None:
    """Text both sides agree on: ints as digits, dates as ISO, missing as None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(int(value))


def _row_json(rows: pd.DataFrame) -> pd.Series:
    """The recomputed projection row as canonical JSON (what the insert repair writes)."""
    columns = [f.name for f in PROJECTION_FIELDS]
    values = rows[[f"{c}_computed" for c in columns]].set_axis(columns, axis=1)
    return values.apply(
        lambda r: to_json({c: _canonical(r[c]) if c == "last_qualified_date" else int(r[c]) for c in columns},
                            sort_keys=True),
        axis=1,
    ) if len(rows) else pd.Series([], dtype=object)


def projection_drift(db: pd.DataFrame, computed: pd.DataFrame, as_of: str) -> pd.DataFrame:
    """PROJECTION_DRIFT: stored `user_streaks` values that differ from the recomputed ones.

    A participant whose sessions qualify for something but who has no projection
    row at all gets one finding for the whole row.
    """
    merged = db.merge(computed, on="user_id", suffixes=("_stored", "_computed"))
    merged = merged[merged["computable"]]
    ids = "user_" + merged["user_id"].astype(str)
    keys = merged["user_id"].astype(str)

    def details(rows: pd.DataFrame, **extra: str) -> pd.Series:
        return pd.Series([{"recomputed_from": "focus_sessions", "as_of": as_of, "timezone": tz, **extra}
                          for tz in rows["timezone_computed"]], index=rows.index, dtype=object)

    parts = []
    stored_rows = merged[merged["has_projection"].astype(bool)]
    for field in PROJECTION_FIELDS:
        stored = stored_rows[f"{field.name}_stored"].map(_canonical).astype(object)
        recomputed = stored_rows[f"{field.name}_computed"].map(_canonical).astype(object)
        differs = stored.fillna("") != recomputed.fillna("")
        hit = stored_rows[differs]
        delta = None
        if field.name in INT_FIELDS:
            delta = (hit[f"{field.name}_computed"].astype(object)
                     - hit[f"{field.name}_stored"].astype(object)).astype(object)
        parts.append(findings_frame(
            entity_type=PROJECTION_ENTITY, entity_id=ids[hit.index], entity_key=keys[hit.index], field=field.name,
            drift_class=DriftClass.PROJECTION_DRIFT, severity=field.severity, db_value=stored[hit.index],
            chain_value=recomputed[hit.index], delta=delta, details=details(hit),
        ))
    missing = merged[~merged["has_projection"].astype(bool) & (merged["qualified_days_computed"] > 0)]
    parts.append(findings_frame(
        entity_type=PROJECTION_ENTITY, entity_id=ids[missing.index], entity_key=keys[missing.index], field=WHOLE_ROW,
        drift_class=DriftClass.PROJECTION_DRIFT, severity=MISSING_PROJECTION_SEVERITY, chain_value=_row_json(missing),
        details=details(missing, reason="no user_streaks row"),
    ))
    return concat_findings(parts)


def timezone_findings(computed: pd.DataFrame) -> pd.DataFrame:
    """INVARIANT_VIOLATION for participants whose timezone is not an IANA zone: no streak can be computed."""
    bad = computed[~computed["timezone_valid"]]
    return findings_frame(
        entity_type=PROJECTION_ENTITY,
        entity_id="user_" + bad["user_id"].astype(str),
        entity_key=bad["user_id"].astype(str),
        field="timezone",
        drift_class=DriftClass.INVARIANT_VIOLATION,
        severity=Severity.WARN,
        db_value=bad["timezone"].astype(object),
        details=pd.Series([{"reason": "not an IANA timezone the tz database knows; streaks cannot be computed"}]
                          * len(bad), index=bad.index, dtype=object),
    )


def implausible_session_findings(implausible: pd.DataFrame) -> pd.DataFrame:
    """INVARIANT_VIOLATION per user whose session log holds implausible sessions (listed in details)."""
    if implausible.empty:
        return empty_findings()
    users = sorted(implausible["user_id"].astype("int64").unique())
    by_user = {user: group for user, group in implausible.groupby(implausible["user_id"].astype("int64"))}

    def sample(group: pd.DataFrame) -> list[dict[str, Any]]:
        return [{"session_id": str(r.session_id), "started_at": _instant(r.started_at), "ended_at": _instant(r.ended_at),
                 "reason": r.reason} for r in group.head(SAMPLE_SESSIONS).itertuples()]

    keys = pd.Series([str(u) for u in users], dtype=object)
    return findings_frame(
        entity_type=PROJECTION_ENTITY, entity_id="user_" + keys, entity_key=keys, field=SESSION_FIELD,
        drift_class=DriftClass.INVARIANT_VIOLATION, severity=Severity.WARN,
        db_value=pd.Series([str(len(by_user[u])) for u in users], dtype=object),
        details=pd.Series([{"implausible_sessions": len(by_user[u]), "sessions": sample(by_user[u]),
                            "reason": "the session log cannot be believed for this user: the streak is neither "
                                      "compared, repaired nor synced on chain until these sessions are fixed"}
                           for u in users], dtype=object),
    )


def _instant(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def shared_wallet_findings(players: pd.DataFrame) -> pd.DataFrame:
    """INVARIANT_VIOLATION for a wallet several participants claim: its streak is ambiguous."""
    shared = players[players["shared_wallet"]]
    owners = shared.groupby(WALLET)["user_id"].agg(lambda ids: ",".join(f"user_{i}" for i in sorted(ids)))
    return findings_frame(
        entity_type=PLAYER_ENTITY,
        entity_id=pd.Series(owners.index, dtype=object),
        entity_key=pd.Series(owners.index, dtype=object),
        field=WALLET,
        drift_class=DriftClass.INVARIANT_VIOLATION,
        severity=Severity.WARN,
        db_value=pd.Series(owners.to_numpy(), dtype=object),
        details=pd.Series([{"reason": "several participants share this wallet; it is neither compared nor synced"}]
                          * len(owners), dtype=object),
    )


def projection_findings(ctx: StepContext, inputs: DomainInputs) -> ExtraFindings:
    """The projection against the truth, timezones that prevent one, and shared wallets."""
    truth = _truth(inputs)
    db = inputs.sources[SOURCE].frame
    computed = truth.streaks
    valid = computed[computed["computable"]]
    return ExtraFindings(
        findings=concat_findings([projection_drift(db, computed, truth.as_of.label), timezone_findings(computed),
                                  implausible_session_findings(truth.implausible),
                                  shared_wallet_findings(truth.players)]),
        checked=Checked.of(PROJECTION_ENTITY, "user_" + valid["user_id"].astype(str),
                           unchecked=int((~computed["computable"]).sum()),
                           unchecked_ids="user_" + computed.loc[~computed["computable"], "user_id"].astype(str)),
    )


def with_player_owner(findings: pd.DataFrame, inputs: DomainInputs) -> pd.DataFrame:
    """A player finding's details name the participant whose wallet it is."""
    players = _truth(inputs).players
    owner = dict(zip(players.loc[~players["shared_wallet"], WALLET],
                     players.loc[~players["shared_wallet"], "user_id"], strict=True))
    findings = findings.copy()
    findings["details"] = [
        {**details, "user_id": int(owner[key])} if entity_type == PLAYER_ENTITY and key in owner else details
        for entity_type, key, details in zip(findings["entity_type"], findings["entity_key"], findings["details"],
                                             strict=True)
    ]
    return findings


def projection_repairs(ctx: StepContext, inputs: DomainInputs, findings: pd.DataFrame) -> pd.DataFrame:
    """Repairs of `user_streaks` toward the recomputed values (compare-and-swap, audited, idempotent)."""
    wanted = findings[(findings["drift_class"] == DriftClass.PROJECTION_DRIFT.value)
                      & (findings["entity_type"] == PROJECTION_ENTITY)]
    queries = {f.name: f.repair_query for f in PROJECTION_FIELDS} | {WHOLE_ROW: MISSING_PROJECTION_REPAIR}
    return repairs.plan_rows(DOMAIN, wanted["entity_type"], wanted["entity_id"], wanted["entity_key"], wanted["field"],
                             wanted["field"].map(queries), wanted["db_value"], wanted["chain_value"])


# -- the chain made to match the database ------------------------------------------------


def sync_candidates(findings: pd.DataFrame) -> pd.DataFrame:
    """Registered players whose on-chain current streak differs from the recomputed one."""
    mismatch = findings[(findings["entity_type"] == PLAYER_ENTITY)
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


def sync(ctx: StepContext, inputs: DomainInputs) -> StepResult:
    """For each registered player whose on-chain streak differs, `sync_streak` signed by the
    oracle (when STREAK_SYNC_ENABLED), or the write it would make recorded as `planned`."""
    assert inputs.diff is not None
    oracle = ctx.resources["streak_oracle"]
    candidates = sync_candidates(inputs.diff.findings)
    target = SyncTarget(contract_id=ctx.contracts.streak_contract_id, run_id=ctx.run.run_id)
    with ctx.reader() as reader:
        attempts = sync_players(ctx.engine, target, reader, oracle, candidates, ctx.log.info)
    counts = attempts["status"].value_counts()
    statuses = ("planned", "skipped_match", "pending", "success", "failed", "error")
    return StepResult(value=None, metadata={
        "sync_mode": "enabled" if oracle.enabled else "disabled (planned only, nothing sent)",
        "oracle": oracle.oracle_address or "(no key loaded)",
        "candidates": len(candidates),
        **{f"syncs/{status}": int(counts.get(status, 0)) for status in statuses},
        "attempts": markdown_table(attempts[list(ATTEMPT_COLUMNS)],
                                   "Every registered player's on-chain streak matches.", rows=50),
    })


SYNCS = Step(
    name="streak_syncs",
    run=sync,
    inputs=("discrepancies",),
    post=True,
    value=False,
    resources=("streak_oracle",),
    pool=ORACLE_POOL,
    kinds=frozenset({"stellar", "postgres"}),
    description="The chain made to match the database: for each registered player whose on-chain streak "
    "differs, `sync_streak` signed by the oracle (when STREAK_SYNC_ENABLED), or the write it would make recorded "
    "as `planned`. Every attempt is a row in `recon.streak_syncs` with its transaction hash.",
)
