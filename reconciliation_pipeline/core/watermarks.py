"""Where each domain's incremental (every-5-minutes) reconciliation left off.

A watermark is per (domain, scope): the last ledger the run looked at and the
time of its database snapshot. Incremental runs read what changed since; open
incidents are always re-checked so they can resolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy.engine import Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.spec import ReconSpec

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


def open_incident_keys(engine: Engine, spec: ReconSpec) -> pd.Series:
    """Keys of the spec's entities with unresolved incidents, in the spec's key dtype."""
    with engine.connect() as connection:
        entity_ids = connection.execute(
            sql.query("recon/queries/watermark_open_incident_keys.sql"),
            {"domain": spec.domain, "entity_type": spec.entity_type},
        ).scalars().all()
    return spec.normalize_keys(pd.Series(entity_ids, dtype=object).str.removeprefix(spec.entity_id_prefix))
