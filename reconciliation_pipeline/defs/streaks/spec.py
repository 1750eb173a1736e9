"""The streaks reconciliation as data: CONTRACTS.md §5 against `users`/`user_streaks`.

The database is authoritative here, and within it the session log is: streaks
are recomputed from `focus_sessions` (see `engine`), the `user_streaks`
projection is compared with them (and repaired toward them), and the chain's
`PlayerProfile.current_streak` is compared with them (and synced toward them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from reconciliation_pipeline.chain.decode import as_u32, contract_data_value, struct_fields
from reconciliation_pipeline.core.drift import Severity
from reconciliation_pipeline.core.spec import (
    Authority,
    ComparedField,
    Comparison,
    ContractDataLayout,
    KeyKind,
    ReconSpec,
)

DOMAIN = "streaks"
PLAYER_FIELDS = ("current_streak", "iq_level")
WALLET = "wallet_address"


def decode_player_profile(entry_data_b64: str) -> dict[str, Any]:
    """`PlayerProfile { current_streak: u32, iq_level: u32 }` → canonical columns."""
    fields = struct_fields(contract_data_value(entry_data_b64), PLAYER_FIELDS)
    return {name: as_u32(fields[name], name) for name in PLAYER_FIELDS}


PLAYER_LAYOUT = ContractDataLayout(
    key_variant="Player",
    key_kind=KeyKind.ADDRESS,
    decode=decode_player_profile,
    columns=PLAYER_FIELDS,
)


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


PLAYER_SPEC = ReconSpec(
    domain=DOMAIN,
    entity_type="player",
    key_column=WALLET,
    snapshot_query="snapshots/streaks/db_user_streaks.sql",
    layout=PLAYER_LAYOUT,
    # An exact count compared as an integer so the finding carries chain − database.
    compared=(ComparedField("current_streak", Comparison.AMOUNT, severity=Severity.WARN),),
    authority=Authority.DATABASE,
    address_columns=(WALLET,),
    missing_severity=Severity.WARN,
)
"""Chain drift: a player's recomputed current streak against their `Player(Address)` entry."""

PROJECTION_SPEC = ReconSpec(
    domain=DOMAIN,
    entity_type="user_streak",
    key_column="user_id",
    entity_id_prefix="user_",
    snapshot_query="snapshots/streaks/db_user_streaks.sql",
    # The projection mirrors the chain's Player layout but is compared with the
    # session log, not read from chain: no compared fields, no ledger reads.
    layout=PLAYER_LAYOUT,
    compared=(),
    authority=Authority.DATABASE,
    db_invariants=ProjectionInvariants,
    db_invariant_severity=Severity.WARN,
)
"""The stored projection: its invariants and the identity of its findings (`user_<id>`)."""


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

MISSING_PROJECTION_REPAIR = "repairs/streaks/missing_projection.sql"
MISSING_PROJECTION_SEVERITY = Severity.WARN
