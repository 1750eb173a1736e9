"""Incremental sweeps for domains without change events (markets).

Nothing on chain says which of their entries changed, so an every-5-minutes run
still reads every entry (200 per request). What it skips is the rest of the
work: an entry whose `last_modified_ledger` is the one recorded when it was
last compared is not decoded or diffed again, unless its database row changed
since the watermark or its entity has an open incident. A run tagged
`recon/sweep=full` (the nightly schedule) compares everything and replaces the
record; so does the first run, which has nothing recorded yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.scopes import UPDATED_AT
from reconciliation_pipeline.core.snapshots import READ_OK, READ_UNCHANGED
from reconciliation_pipeline.core.spec import Entity
from reconciliation_pipeline.core.watermarks import INCREMENTAL_SWEEP, SweepPlan

WATERMARK_SCOPE = "entry_versions"
UPSERT_CHUNK = 100_000
"""Entries recorded per statement: bounds the size of the bound arrays."""


@dataclass(frozen=True)
class KnownVersions:
    """Entries compared before. One whose `last_modified_ledger` is still the recorded one
    is unchanged, unless its entity must be re-checked (row changed, open incident)."""

    last_modified: Mapping[str, int]
    recheck: frozenset[str]

    def unchanged(self, key: Any, last_modified_ledger: int) -> bool:
        text = str(key)
        return self.last_modified.get(text) == last_modified_ledger and text not in self.recheck


@dataclass(frozen=True)
class ComparedEntries:
    """One entry kind's chain snapshot after the run compared it, read in `mode`."""

    entry_kind: str
    chain: pd.DataFrame
    key_column: str
    mode: str


def known_versions(engine: Engine, plan: SweepPlan, domain: str, entity: Entity, db: pd.DataFrame) -> KnownVersions | None:
    """What an incremental run may skip for one entity; None for a full sweep."""
    if plan.watermark is None:
        return None
    with engine.connect() as connection:
        recorded = connection.execute(
            sql.query("recon/queries/entry_versions_read.sql"), {"domain": domain, "entry_kind": entity.entity_type}
        ).tuples()
        last_modified = {str(key): int(ledger) for key, ledger in recorded}
    changed = db.loc[pd.to_datetime(db[UPDATED_AT], utc=True) > plan.watermark.db_since, entity.key]
    incidents = plan.incident_keys.get(entity.name, ())
    recheck = frozenset(changed.astype(str)) | frozenset(str(k) for k in incidents)
    return KnownVersions(last_modified, recheck)


def _chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    return (values[start:start + size] for start in range(0, len(values), size))


def finish_sweep(
    engine: Engine,
    domain: str,
    run_id: str,
    entries: Iterable[ComparedEntries],
    *,
    ledger_sequence: int,
    db_snapshot_at: datetime,
) -> int:
    """Record what the run compared and move the watermark, in one transaction; run
    after the findings are persisted. Returns how many entry versions were written.
    `ledger_sequence` is the RPC's latest ledger before the run read anything: the
    next run looks for changes after it.

    Decoded entries are recorded at their `last_modified_ledger`; entries the run
    could not compare (read failed, undecodable, absent) are forgotten, so the next
    run compares them whatever else it knows.
    """
    written = 0
    with engine.begin() as connection:
        for compared in entries:
            chain = compared.chain
            params = {"domain": domain, "entry_kind": compared.entry_kind}
            versioned = (chain["read_status"] == READ_OK) & chain["last_modified_ledger"].notna()
            if compared.mode == INCREMENTAL_SWEEP:
                forget = chain.loc[~versioned & (chain["read_status"] != READ_UNCHANGED), compared.key_column]
                if len(forget):
                    connection.execute(sql.query("recon/queries/entry_versions_forget.sql"),
                                       {**params, "entity_keys": forget.astype(str).tolist()})
            else:
                connection.execute(sql.query("recon/queries/entry_versions_clear.sql"), params)
            keys = chain.loc[versioned, compared.key_column].astype(str).tolist()
            ledgers = [int(x) for x in chain.loc[versioned, "last_modified_ledger"]]
            for key_chunk, ledger_chunk in zip(_chunks(keys, UPSERT_CHUNK), _chunks(ledgers, UPSERT_CHUNK),
                                               strict=True):
                connection.execute(
                    sql.query("recon/queries/entry_versions_upsert.sql"),
                    {**params, "run_id": run_id, "entity_keys": key_chunk, "last_modified_ledgers": ledger_chunk},
                )
            written += len(keys)
        connection.execute(
            sql.query("recon/queries/watermark_upsert.sql"),
            {"domain": domain, "scope": WATERMARK_SCOPE, "ledger_sequence": ledger_sequence,
             "db_watermark": db_snapshot_at, "run_id": run_id},
        )
    return written
