"""Coverage: what share of a domain's entities was actually compared recently.

A reconciliation that quietly checks 60% of balances looks healthy from its
findings alone. Every run records each entity it knew of in
`recon.entity_coverage` (in the same transaction as its findings): compared
or not, and when it was last compared. A domain's coverage is then the share
of its known entities (those a run knew of in the last `KNOWN_DAYS` days, so
entities that left both sides stop counting) compared in the last
`WINDOW_HOURS` hours, beside the count never compared at all. An incremental
run adds to the picture the full sweeps drew; a run whose reads fail leaves
those entities with the check before, or none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection, Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.results import Checked, KeyedEntities

WINDOW_HOURS = 24
KNOWN_DAYS = 7


COPY_ROWS_PER_BLOCK = 65_536


def _copy_text(value: str) -> str:
    """A value as COPY's text format writes it: backslash, tab, newline and carriage return escaped."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def keyed_copy_blocks(part: KeyedEntities, compared: bool, rows_per_block: int = COPY_ROWS_PER_BLOCK
                      ) -> Iterator[tuple[memoryview, int]]:
    """The part's rows of `coverage_seen` (entity type, prefix + key, compared) as COPY text, with
    their count, `rows_per_block` at a time: Arrow writes a block's keys as digits and joins each
    line in one call, where `write_row` formatted a Python row per entity: staging a million
    streams took 0.26 s instead of 0.55 s (of about 3.6 s recording their coverage)."""
    keys = part.key_array()
    head = pa.scalar(f"{_copy_text(part.entity_type)}\t{_copy_text(part.prefix)}")
    tail = pa.scalar("\tt\n" if compared else "\tf\n")
    for start in range(0, len(keys), rows_per_block):
        digits = pa.array(keys[start:start + rows_per_block], pa.uint64()).cast(pa.string())
        lines = pc.binary_join_element_wise(head, digits, tail, "")
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=4 * lines.offset)
        yield memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]], len(lines)


def record_coverage(connection: Connection, domain: str, run_id: str, checked: Checked, seen_at: datetime) -> int:
    """Record every entity the run knew of; returns how many.

    A sweep knows a million entities, so they are streamed into a temporary table
    with COPY and applied in two set-based statements (update the known, insert the
    new): an INSERT .. ON CONFLICT over bound arrays took twice as long at 1M. Both
    hash-join a million rows, so the transaction gives them the memory to do it in one pass.
    """
    params = {"domain": domain, "run_id": run_id, "seen_at": seen_at}
    connection.execute(sql.query("recon/queries/coverage_stage.sql"))
    cursor = connection.connection.driver_connection.cursor()
    known = 0
    with cursor.copy(sql.read_sql("recon/queries/coverage_copy.sql")) as copy:
        for row in checked.known_by_id():
            copy.write_row(row)
            known += 1
        for part, compared in checked.known_by_key():
            for block, rows in keyed_copy_blocks(part, compared):
                copy.write(block)
                known += rows
    if not known:
        return 0
    connection.execute(sql.query("recon/queries/coverage_analyze.sql"))
    connection.execute(sql.query("recon/queries/coverage_work_mem.sql"))
    updated = connection.execute(sql.query("recon/queries/coverage_update.sql"), params).rowcount
    # A staged entity that matched no row is new. When every one matched (a sweep's steady
    # state), the insert's anti-join over the whole table would find nothing.
    if updated < known:
        connection.execute(sql.query("recon/queries/coverage_insert.sql"), params)
    return known


@dataclass(frozen=True)
class CoverageSummary:
    """A domain's coverage at one moment, overall and per entity type."""

    known: int
    checked_recently: int
    never_checked: int
    by_entity_type: dict[str, tuple[int, int, int]]
    """entity type -> (known, checked in the window, never checked)."""

    @property
    def ratio(self) -> float:
        """Share of known entities compared in the window; 1.0 when nothing is known yet."""
        return self.checked_recently / self.known if self.known else 1.0

    def as_metadata(self) -> dict[str, float | int]:
        return {
            "coverage/checked_24h_ratio": round(self.ratio, 6),
            "coverage/known_entities": self.known,
            "coverage/checked_24h": self.checked_recently,
            "coverage/never_checked": self.never_checked,
        }


def coverage_summary(engine: Engine, domain: str, at: datetime) -> CoverageSummary:
    with engine.connect() as connection:
        rows = connection.execute(sql.query("recon/queries/coverage_summary.sql"), {
            "domain": domain, "at": at, "window_hours": WINDOW_HOURS, "known_days": KNOWN_DAYS,
        }).tuples().all()
    by_type = {entity_type: (int(known), int(recent), int(never)) for entity_type, known, recent, never in rows}
    return CoverageSummary(
        known=sum(v[0] for v in by_type.values()),
        checked_recently=sum(v[1] for v in by_type.values()),
        never_checked=sum(v[2] for v in by_type.values()),
        by_entity_type=by_type,
    )
