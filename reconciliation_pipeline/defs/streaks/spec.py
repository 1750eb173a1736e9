"""The streaks reconciliation as data: CONTRACTS.md §5 against `users`/`user_streaks`.

The database is authoritative here, and within it the session log is: streaks
are recomputed from `focus_sessions` (`engine.py`, a domain step), the
`user_streaks` projection is compared with them (and repaired toward them), and
the chain's `PlayerProfile.current_streak` is compared with them (and synced
toward them, `sync.py`, behind STREAK_SYNC_ENABLED). The newest daily
partition is the live one; an older one is a backfill that recomputes only.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.spec import (
    Authority,
    Cadence,
    ComparedField,
    Comparison,
    DataKey,
    DomainSpec,
    Entity,
    Hooks,
    Invariants,
    JobSpec,
    KeyKind,
    Layout,
    Partitioning,
    Scope,
    Source,
)
from reconciliation_pipeline.defs.streaks import rules
from reconciliation_pipeline.defs.streaks.sync import PLAYER_PROFILE, PLAYER_VARIANT


class ProjectionInvariants(pa.DataFrameModel):
    """What any streak row must satisfy, stored or recomputed."""

    current_streak: Series[object] = pa.Field(ge=0)
    longest_streak: Series[object] = pa.Field(ge=0)
    qualified_days: Series[object] = pa.Field(ge=0)

    @pa.dataframe_check(name="current_le_longest", columns=("current_streak", "longest_streak"))
    def current_le_longest(cls, frame: pd.DataFrame, *, columns: tuple[str, str]) -> pd.Series:
        current, longest = columns
        return (frame[current] <= frame[longest]).astype(bool)

    @pa.dataframe_check(name="longest_le_qualified_days", columns=("longest_streak", "qualified_days"))
    def longest_le_qualified_days(cls, frame: pd.DataFrame, *, columns: tuple[str, str]) -> pd.Series:
        longest, days = columns
        return (frame[longest] <= frame[days]).astype(bool)

    class Config:
        strict = False


SOURCE = Source(
    name=rules.SOURCE,
    query="snapshots/streaks/user_streaks.sql",
    key_column="user_id",
    key_kind=KeyKind.U64,
    entity_type=rules.PROJECTION_ENTITY,
    entity_id_prefix="user_",
    amount_columns=rules.INT_FIELDS,
    invariants=Invariants(ProjectionInvariants, "projection_invariants",
                          "stored rows: counts >= 0, current <= longest <= qualified days", Severity.WARN,
                          applies_to=lambda frame: frame["has_projection"]),
    windowed=False,
    description="Every streak participant as the app stores them: wallet, timezone and the `user_streaks` "
    "projection the app shows (current and longest streak, last qualified day, qualified days). This is what the "
    "app believes; the session log decides whether it is right.",
)

PLAYER = Entity(
    name="player_profiles",
    entity_type=rules.PLAYER_ENTITY,
    source=rules.COMPUTED.name,
    key_column=rules.WALLET,
    key_kind=KeyKind.ADDRESS,
    entity_id_prefix="",
    key_source=DataKey(PLAYER_VARIANT, contract="streak_contract_id"),
    layout=Layout.of(PLAYER_PROFILE),
    # An exact count compared as an integer so the finding carries chain − database.
    compared=(ComparedField("current_streak", Comparison.AMOUNT),),
    authority=Authority.DATABASE,
    address_columns=(rules.WALLET,),
    description="The streak contract's `PlayerProfile` (current streak, IQ level) of every participant with a "
    "valid wallet of their own, read in batches of 200 keys with the ledger each was read at; wallets not "
    "registered on chain are kept as `missing`.",
)

SPEC = DomainSpec(
    domain="streaks",
    description="the app's streak projection and the streak contract against the streaks recomputed from the "
    "focus-session log: stale projection values, players behind on chain, wallets not registered or invalid, and "
    "rows that contradict themselves.",
    sources=(SOURCE,),
    entities=(PLAYER,),
    steps=(rules.COMPUTED, rules.SYNCS),
    findings_asset="streak",
    repairs_asset="user_streak",
    hooks=Hooks(findings=rules.projection_findings, skip_compare=rules.recompute_only, repairs=rules.projection_repairs,
                decorate=rules.with_player_owner),
    produces=(DriftClass.PROJECTION_DRIFT, DriftClass.INVARIANT_VIOLATION),
    scopes=(Scope(
        name="nightly",
        group="streaks",
        partitioning=Partitioning.DAILY,
        cadence=Cadence.NIGHTLY,
        jobs=(JobSpec(
            name="streak_reconciliation",
            description="Streaks recomputed from focus sessions, compared with the user_streaks projection and the "
            "streak contract, persisted to recon.*; projection repairs planned; the chain synced when "
            "STREAK_SYNC_ENABLED. Launched by streak_change_sensor for the users that changed.",
        ),),
    ),),
)
