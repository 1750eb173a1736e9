"""Where each domain's incremental (every-5-minutes) reconciliation left off.

A watermark is per (domain, scope): the last ledger the run looked at and the
time of its database snapshot. Incremental runs read what changed since; open
incidents are always re-checked so they can resolve. A run tagged
`recon/sweep=full` (the nightly schedules) compares everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.spec import Entity, KeyKind

SWEEP_TAG = "recon/sweep"
FULL_SWEEP = "full"
INCREMENTAL_SWEEP = "incremental"
DB_OVERLAP = timedelta(minutes=5)
"""Rows updated this long before the watermark are compared again: a transaction that
committed after the last snapshot may carry an earlier `updated_at`."""


@dataclass(frozen=True)
class Watermark:
    ledger_sequence: int
    db_watermark: datetime

    @property
    def db_since(self) -> datetime:
        """Database rows updated after this instant count as changed."""
        return self.db_watermark - DB_OVERLAP


def read_watermark(engine: Engine, domain: str, scope: str) -> Watermark | None:
    with engine.connect() as connection:
        row = connection.execute(
            sql.query("recon/queries/watermark_read.sql"), {"domain": domain, "scope": scope}
        ).mappings().first()
    return None if row is None else Watermark(int(row["ledger_sequence"]), row["db_watermark"])


def write_watermark(
    engine: Engine, domain: str, scope: str, run_id: str, ledger_sequence: int, db_watermark: datetime
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sql.query("recon/queries/watermark_upsert.sql"),
            {"domain": domain, "scope": scope, "ledger_sequence": ledger_sequence,
             "db_watermark": db_watermark, "run_id": run_id},
        )


def open_incident_keys(engine: Engine, domain: str, entity: Entity) -> pd.Series:
    """Keys of the entity's unresolved incidents and findings in flight, in its key dtype."""
    with engine.connect() as connection:
        entity_ids = connection.execute(
            sql.query("recon/queries/watermark_open_incident_keys.sql"),
            {"domain": domain, "entity_type": entity.entity_type},
        ).scalars().all()
    keys = pd.Series(entity_ids, dtype=object).str.removeprefix(entity.entity_id_prefix or "")
    if entity.kind is KeyKind.U64:
        # Incidents of the same entity type not keyed by a chain id (a provisional loan's) are not re-read.
        keys = keys[keys.str.fullmatch(r"\d+")]
    return entity.kind.normalize(keys)


@dataclass(frozen=True)
class SweepPlan:
    mode: str
    reason: str
    watermark: Watermark | None
    """The watermark an incremental run starts from; None for a full sweep."""
    latest_ledger: int = 0
    """The RPC's latest ledger before the run read anything: the next watermark's ledger."""
    named: tuple[Any, ...] = ()
    """Keys or column values that change events named (in a full sweep: in the whole retention)."""
    events: int = 0
    incident_keys: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    """Per entity: keys with open incidents or findings in flight, re-checked so they can resolve."""
    events_source: str | None = None
    """Where the change events came from: getEvents, getLedgers (metadata replay) or both."""

    @property
    def full(self) -> bool:
        return self.mode == FULL_SWEEP

    @property
    def ledger_from(self) -> int | None:
        return self.watermark.ledger_sequence + 1 if self.watermark is not None else None


def plan_sweep(
    engine: Engine, domain: str, scope: str, run_tags: Mapping[str, str], latest_ledger: int
) -> SweepPlan:
    """Full when the run asks for it, when no watermark is recorded yet, or when the chain
    is behind the watermark (a reset or different network: what was recorded belongs to
    another history). Incremental otherwise. `latest_ledger` is the RPC's latest ledger
    before the run reads anything."""
    requested = run_tags.get(SWEEP_TAG, INCREMENTAL_SWEEP)
    if requested not in (FULL_SWEEP, INCREMENTAL_SWEEP):
        raise ValueError(f"run tag {SWEEP_TAG}={requested!r}: expected {FULL_SWEEP!r} or {INCREMENTAL_SWEEP!r}")
    if requested == FULL_SWEEP:
        return SweepPlan(FULL_SWEEP, f"the run is tagged {SWEEP_TAG}={FULL_SWEEP}", None, latest_ledger)
    watermark = read_watermark(engine, domain, scope)
    if watermark is None:
        return SweepPlan(FULL_SWEEP, "no watermark yet", None, latest_ledger)
    if latest_ledger < watermark.ledger_sequence:
        return SweepPlan(
            FULL_SWEEP,
            f"the RPC's latest ledger {latest_ledger} is behind the recorded ledger {watermark.ledger_sequence} "
            "(a reset or different network)",
            None,
            latest_ledger,
        )
    return SweepPlan(
        INCREMENTAL_SWEEP,
        f"changes after ledger {watermark.ledger_sequence}, rows updated since {watermark.db_since.isoformat()}, "
        "open incidents",
        watermark,
        latest_ledger,
    )
