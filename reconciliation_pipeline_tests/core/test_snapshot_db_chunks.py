"""`snapshot_db` streams its query in chunks: the frame must not depend on the chunk size.

Against the real PostgreSQL: rows cross chunk boundaries, 39-digit amounts stay
exact Python ints, an empty result keeps its columns, the query really runs on a
server-side cursor one chunk at a time, and repeated text is shared across chunks.
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from recon_demo import DEMO_SQL
from recon_demo.identities import account_id, contract_id
from reconciliation_pipeline.core import snapshots
from reconciliation_pipeline.core.scopes import RowFilter
from reconciliation_pipeline.core.snapshots import snapshot_db
from reconciliation_pipeline.defs.streams.spec import STREAMS_SOURCE

SPEC = STREAMS_SOURCE
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
WINDOW = RowFilter(window_end=FAR_FUTURE)
NUMERIC_39_MAX = 10**39 - 1
"""The largest NUMERIC(39,0): 39 nines, beyond i128 and far beyond float precision."""
I128_MIN, I128_MAX = -(2**127), 2**127 - 1
EXTREMES = [NUMERIC_39_MAX, -NUMERIC_39_MAX, I128_MAX, I128_MIN, 2**53 + 1, 0, -1]
ROWS = 23
SNAPSHOT_COLUMNS = ["stream_id", "sender", "recipient", "token", "total", "released", "status", "created_at", "updated_at"]


def _streams(n: int) -> list[tuple[int, str, str, str, int, int, str]]:
    """(id, sender, recipient, token, total, released, status); extremes spread over every chunk size tried."""
    return [
        (i, account_id(f"sender:{i % 3}"), account_id(f"recipient:{i}"), contract_id(f"token:{i % 2}"),
         EXTREMES[i % len(EXTREMES)], EXTREMES[(i * 3) % len(EXTREMES)], ("Active", "Paused")[i % 2])
        for i in range(1, n + 1)
    ]


def _insert(engine: sa.Engine, streams: list[tuple[int, str, str, str, int, int, str]]) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(DEMO_SQL.read("seed/copy_streams.sql")) as copy:
            for stream_id, sender, recipient, token, total, released, status in streams:
                copy.write_row((str(stream_id), sender, recipient, token, str(total), str(released), status,
                                created + timedelta(seconds=stream_id), created))


@pytest.mark.parametrize("chunk_rows", [1, 4, 7, ROWS - 1, ROWS])
def test_chunked_snapshot_equals_single_chunk_and_the_rows(engine: sa.Engine, chunk_rows: int) -> None:
    streams = _streams(ROWS)
    _insert(engine, streams)
    whole = snapshot_db(engine, SPEC, WINDOW, chunk_rows=10 * ROWS).frame
    chunked = snapshot_db(engine, SPEC, WINDOW, chunk_rows=chunk_rows).frame

    pd.testing.assert_frame_equal(chunked, whole)
    assert list(chunked.columns) == SNAPSHOT_COLUMNS
    assert list(chunked.index) == list(range(ROWS))
    assert chunked["stream_id"].dtype == "uint64"
    assert [c for c in SNAPSHOT_COLUMNS[1:] if chunked[c].dtype != object] == []
    got = [(int(r.stream_id), r.sender, r.recipient, r.token, r.total, r.released, r.status)
           for r in chunked.itertuples(index=False)]
    assert got == [(i, s, r, t, total, released, status.lower()) for i, s, r, t, total, released, status in streams]
    # Exact Python ints (never floats, never Decimal), equal to the 39-digit values and i128 extremes.
    assert {type(v) for v in [*chunked["total"], *chunked["released"]]} == {int}
    assert {NUMERIC_39_MAX, -NUMERIC_39_MAX, I128_MAX, I128_MIN} <= set(chunked["total"])


def test_empty_result_keeps_columns_and_key_dtype(engine: sa.Engine) -> None:
    frame = snapshot_db(engine, SPEC, WINDOW, chunk_rows=4).frame

    assert frame.empty
    assert list(frame.columns) == SNAPSHOT_COLUMNS
    assert frame["stream_id"].dtype == "uint64"
    assert frame["total"].dtype == object and frame["released"].dtype == object


def test_snapshot_streams_through_a_server_side_cursor_chunk_by_chunk(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _insert(engine, _streams(ROWS))
    cursors: list[tuple[type, int | None]] = []
    chunk_sizes: list[int] = []

    def record_cursor(conn: sa.Connection, cursor: object, statement: str, parameters: object, context: object,
                      executemany: bool) -> None:
        cursors.append((type(cursor), context.execution_options.get("yield_per")))  # type: ignore[attr-defined]

    def record_chunk(values: dict[str, list[object]], *args: object) -> pd.DataFrame:
        chunk_sizes.append(len(values["stream_id"]))
        return chunk_frame(values, *args)

    chunk_frame = snapshots._db_chunk_frame
    monkeypatch.setattr(snapshots, "_db_chunk_frame", record_chunk)
    sa.event.listen(engine, "before_cursor_execute", record_cursor)
    try:
        frame = snapshot_db(engine, SPEC, WINDOW, chunk_rows=5).frame
    finally:
        sa.event.remove(engine, "before_cursor_execute", record_cursor)

    assert len(cursors) == 1
    cursor_type, yield_per = cursors[0]
    assert issubclass(cursor_type, psycopg.ServerCursor)
    assert yield_per == 5
    # Each chunk is converted on its own: never every row at once.
    assert chunk_sizes == [5, 5, 5, 5, 3]
    assert len(frame) == ROWS
    assert gc.isenabled()


def test_repeated_text_is_one_object_across_chunks(engine: sa.Engine) -> None:
    _insert(engine, _streams(ROWS))
    frame = snapshot_db(engine, SPEC, WINDOW, chunk_rows=4).frame

    # Two tokens and two statuses: one str object each, across all six chunks.
    assert len({id(v) for v in frame["token"]}) == 2
    assert len({id(v) for v in frame["status"]}) == 2
    # Recipients are all distinct: nothing to share, every value kept.
    assert frame["recipient"].nunique() == ROWS
