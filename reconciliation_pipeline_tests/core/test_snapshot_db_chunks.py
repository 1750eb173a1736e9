"""`snapshot_db` streams its query in chunks: the frame must not depend on the chunk size.

Against the real PostgreSQL: rows cross chunk boundaries, 39-digit amounts stay
exact Python ints, an empty result keeps its columns, the query really runs on a
server-side cursor one chunk at a time, and repeated text is shared across chunks.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from recon_demo import DEMO_SQL
from recon_demo.identities import account_id, contract_id
from reconciliation_pipeline.core import snapshots
from reconciliation_pipeline.core.scopes import RowFilter
from reconciliation_pipeline.core.snapshots import snapshot_db
from reconciliation_pipeline.core.spec import KeyKind
from reconciliation_pipeline.core.streaming import StoredRows, _StoredRowsWriter
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


@pytest.mark.parametrize("chunk_rows", [1, 4, ROWS])
def test_a_stored_snapshot_reads_back_as_the_frame_with_every_amount_exact(
    engine: sa.Engine, tmp_path: Path, chunk_rows: int
) -> None:
    # Chunks of one row hold only amounts within int64 (written by Arrow's cast) or only
    # amounts beyond it (written one by one); larger chunks mix them.
    _insert(engine, _streams(ROWS))
    frame = snapshot_db(engine, SPEC, WINDOW, chunk_rows=ROWS).frame
    writer = _StoredRowsWriter(tmp_path / "streams.parquet", SPEC)
    with snapshots.db_chunks(engine, SPEC, WINDOW, chunk_rows=chunk_rows, share_text=False) as chunks:
        empty = snapshots.empty_db_frame(SPEC, chunks.columns)
        for chunk in chunks.chunks:
            writer.write(chunk)
    stored = StoredRows(path=writer.close(), rows=writer.rows, source=SPEC, empty=empty)

    back = stored.rows_of(0, ROWS)
    pd.testing.assert_frame_equal(back[["stream_id", "total", "released", "status"]],
                                  frame[["stream_id", "total", "released", "status"]])
    assert {type(v) for v in [*back["total"], *back["released"]]} == {int}
    assert stored.rows_of(5, 9)["stream_id"].tolist() == frame["stream_id"].tolist()[5:9]


def test_read_ahead_hands_on_every_item_then_the_producers_error_in_its_place() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("the third fetch failed")

    got: list[int] = []
    with pytest.raises(ValueError, match="the third fetch failed"):
        for item in snapshots.read_ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_leaving_a_read_ahead_early_ends_its_thread_after_the_item_it_is_producing() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1_000):
            produced.append(i)
            yield i

    ahead = snapshots.read_ahead(items())
    assert next(ahead) == 0
    ahead.close()
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]
    # One item handed on, one waiting, and at most one more produced before the stop was seen.
    assert len(produced) <= 3


def test_the_snapshot_fetches_the_next_chunk_while_one_is_converted(engine: sa.Engine) -> None:
    _insert(engine, _streams(ROWS))
    with snapshots.db_chunks(engine, SPEC, WINDOW, chunk_rows=4) as chunks:
        first = next(chunks.chunks)
        fetching = [t for t in threading.enumerate() if t.name == "read-ahead"]
    # Left after one chunk: the fetching thread ended before the connection closed.
    assert len(first) == 4 and len(fetching) == 1
    assert not fetching[0].is_alive()


@pytest.mark.parametrize("keys", [
    [0, 1, 2**63 - 1, 2**63, 2**64 - 1],
    ["7", "8"],
    [np.uint64(3), 4],
])
def test_u64_keys_normalize_as_one_int_call_per_key_would(keys: list[object]) -> None:
    series = pd.Series(keys, dtype=object, index=range(10, 10 + len(keys)))
    pd.testing.assert_series_equal(KeyKind.U64.normalize(series), series.map(int).astype("uint64"))
