"""A streaming sweep reads its database side through COPY as CSV, parsed by Arrow.

Against the real PostgreSQL: every column type COPY is read for gives the values the
cursor gives (NULL beside empty text, text with commas, quotes and newlines, 39-digit
amounts, booleans, timestamps with and without a zone); a column of another type falls
back to the cursor; a key that is not a u64 is a clear error.
"""

from __future__ import annotations

import logging
import shutil
import threading
from types import SimpleNamespace

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from reconciliation_pipeline.core import snapshots, streaming
from reconciliation_pipeline.core.scopes import RowFilter
from reconciliation_pipeline.core.spec import KeyKind, Source
from reconciliation_pipeline.core.sql import SqlFolder
from reconciliation_pipeline.core.streaming import canonical_frame

TEST_SQL = SqlFolder("reconciliation_pipeline_tests.core")


def _source(query: str) -> Source:
    return Source(name="kinds", query=query, sql=TEST_SQL, key_column="item_id", key_kind=KeyKind.U64,
                  entity_type="item", entity_id_prefix="item_", amount_columns=("amount",),
                  description="Literal rows of every type a snapshot reads through COPY.")


def _copied_frame(engine: sa.Engine, source: Source, block_bytes: int, batches: int | None = None
                  ) -> pd.DataFrame | None:
    with snapshots.db_copied(engine, source, RowFilter(), block_bytes=block_bytes) as copied:
        if copied is None:
            return None
        tables = [pa.Table.from_batches([batch]) for batch in copied.batches]
    if batches is not None:
        assert len(tables) == batches
    return pd.concat([canonical_frame(t, source, copied.columns) for t in tables], ignore_index=True)


def _instants(values: pd.Series) -> list[object]:
    return [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in values]


@pytest.mark.parametrize(("block_bytes", "batches"), [(150, 2), (1 << 20, 1)])
def test_copied_rows_are_the_rows_the_cursor_reads(engine: sa.Engine, block_bytes: int, batches: int) -> None:
    source = _source("copy_kinds.sql")
    cursor = snapshots.snapshot_db(engine, source).frame
    copied = _copied_frame(engine, source, block_bytes, batches)

    assert copied is not None
    assert list(copied.columns) == list(cursor.columns)
    assert copied["item_id"].dtype == "uint64" and copied["item_id"].tolist() == [1, 2, 3]
    for column in ("plain", "empty_text", "null_text", "awkward", "flag", "null_flag", "small", "amount", "code"):
        assert copied[column].tolist() == cursor[column].tolist(), column
        assert [type(v) for v in copied[column]] == [type(v) for v in cursor[column]], column
    for column in ("created_at", "seen_at"):
        assert _instants(copied[column]) == _instants(cursor[column]), column
    assert copied["amount"].tolist()[:2] == [10**39 - 1, -(2**127)]
    assert copied["awkward"].tolist()[0] == 'a,"b"\nc'


def test_a_column_of_another_type_is_read_by_the_cursor(engine: sa.Engine) -> None:
    assert _copied_frame(engine, _source("copy_jsonb.sql"), 1 << 20) is None


def test_a_key_that_is_not_a_u64_is_a_clear_error(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="item_id that is not a u64 key"):
        _copied_frame(engine, _source("copy_negative_key.sql"), 1 << 20)


def test_leaving_after_the_first_batch_ends_the_reading_thread_before_the_copy_closes(engine: sa.Engine) -> None:
    """Arrow parses the next batch in a thread while one is converted: a caller that stops early
    leaves no thread reading a COPY whose connection went back to the pool."""
    with snapshots.db_copied(engine, _source("copy_kinds.sql"), RowFilter(), block_bytes=150) as copied:
        assert copied is not None
        first = next(copied.batches)
    assert first.num_rows >= 1
    assert not [thread for thread in threading.enumerate() if thread.name == "read-ahead"]
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1


@pytest.mark.parametrize("query", ["copy_wide_first_row.sql", "copy_wide_later_row.sql"])
def test_a_row_longer_than_the_block_is_a_clear_error(engine: sa.Engine, query: str) -> None:
    with pytest.raises(ValueError, match=r"kinds: a row's CSV is longer than the 1,000-byte block .* "
                                         r"\(RECON_SWEEP_CHUNK_ROWS=0\)"):
        _copied_frame(engine, _source(query), 1000)


def test_no_rows_are_no_batches_not_an_error(engine: sa.Engine) -> None:
    """COPY of an empty result sends no bytes, which Arrow would refuse as an empty CSV file."""
    with snapshots.db_copied(engine, _source("copy_no_rows.sql"), RowFilter()) as copied:
        assert copied is not None
        assert copied.columns == ["item_id", "note", "amount"]
        assert list(copied.batches) == []


@pytest.mark.parametrize(("query", "read_by"), [("copy_kinds.sql", "copy"), ("copy_jsonb.sql", "cursor")])
def test_the_stored_snapshot_is_the_same_whichever_way_it_was_read(engine: sa.Engine, query: str,
                                                                  read_by: str) -> None:
    """A streaming sweep's database step stores what the cursor reads, through COPY or, for a column
    type COPY is not parsed for, through the cursor itself; its metadata says which."""
    source = _source(query)
    cursor = snapshots.snapshot_db(engine, source).frame
    # The step needs only these of a StepContext.
    ctx = SimpleNamespace(engine=engine, settings=SimpleNamespace(sweep_chunk_rows=2),
                          run=SimpleNamespace(run_id=f"copy-test-{read_by}"), log=logging.getLogger(__name__))
    try:
        output = streaming.stored_db_step(ctx, source, RowFilter(), None)  # type: ignore[arg-type]
        stored = output.value.stored
        assert output.metadata["read_by"] == read_by
        assert stored.rows == len(cursor)
        read_back = stored.rows_of(0, stored.rows)
    finally:
        shutil.rmtree(streaming.sweep_directory(ctx.run.run_id), ignore_errors=True)
    assert read_back["item_id"].tolist() == cursor["item_id"].tolist()
    assert read_back["amount"].tolist() == cursor["amount"].tolist()
