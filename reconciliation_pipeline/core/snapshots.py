"""Snapshots of both sides as dataframes in canonical columns."""

from __future__ import annotations

import gc
import io
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy.engine import Connection, Engine

from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.chain import keys as chain_keys
from reconciliation_pipeline.chain.decode import DecodedBatch, DecodeError, object_array
from reconciliation_pipeline.chain.reader import ChainReader, EntryBatch, ProgressCallback
from reconciliation_pipeline.core.results import DbSnapshot
from reconciliation_pipeline.core.scopes import RowFilter, snapshot_statement
from reconciliation_pipeline.core.spec import DataKey, Entity, KeyKind, Layout, Source
from reconciliation_pipeline.core.sql import read_sql

if TYPE_CHECKING:
    from reconciliation_pipeline.core.entry_versions import KnownVersions

READ_OK = "ok"
READ_MISSING = "missing"
READ_ERROR = "error"
READ_UNCHANGED = "unchanged"
"""Read, but its `last_modified_ledger` is the one recorded when it was last compared: not decoded."""
ANSWERED = (READ_OK, READ_MISSING, READ_UNCHANGED)
"""Read statuses of keys the RPC answered (an entry, no entry, or an entry known unchanged)."""

CHAIN_META_COLUMNS: tuple[str, ...] = (
    "read_status",
    "read_error",
    "raw_xdr",
    "ledger_key",
    "last_modified_ledger",
    "live_until_ledger",
    "ledger_sequence",
)


def to_exact_ints(values: pd.Series) -> pd.Series:
    """Text or Decimal amounts as Python ints (object dtype): exact at any size."""
    # A list, not Series.map: map would infer float64 for [5, None] and round big values.
    return pd.Series([None if v is None or v != v else int(v) for v in values], index=values.index, dtype=object)


DB_SNAPSHOT_CHUNK_ROWS = 50_000
"""Rows per fetch of a database snapshot's server-side cursor. Memory then holds the frame
built so far plus one chunk, not every row at once in the driver, as Row objects and as
the frame."""


def _column_values(rows: Sequence[Any], columns: list[str]) -> dict[str, list[Any]]:
    """The rows transposed: one list per column."""
    if not rows:
        return {column: [] for column in columns}
    return {column: list(values) for column, values in zip(columns, zip(*rows), strict=True)}


def _repetitive_text_columns(values: Mapping[str, Sequence[Any]]) -> list[str]:
    """Columns whose text values mostly repeat (a status, a token, a sender)."""
    columns = []
    for column, column_values in values.items():
        texts = [v for v in column_values if isinstance(v, str)]
        if texts and 2 * len(set(texts)) <= len(texts):
            columns.append(column)
    return columns


def _db_chunk_frame(values: dict[str, list[Any]], source: Source, shared: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One chunk in canonical form: amounts exact ints, keys canonical, and equal strings
    of `shared`'s columns one object across the whole snapshot.

    Converted column by column before the frame is built: a frame built from the rows
    holds them in one 2-D block whose views would keep every original object (the
    amounts' text, the unshared strings) alive. The driver makes a new str per row (a
    56-character address is ~105 bytes each time); sharing keeps values equal and the
    dtype object, and pickling (Dagster's IO manager) then writes each distinct value once.
    """
    for column in source.amount_columns:
        values[column] = to_exact_ints(pd.Series(values[column], dtype=object)).tolist()
    for column, seen in shared.items():
        values[column] = [seen.setdefault(v, v) if isinstance(v, str) else v for v in values[column]]
    frame = pd.DataFrame({column: pd.Series(column_values, dtype=object) for column, column_values in values.items()})
    frame[source.key_column] = source.key_kind.normalize(frame[source.key_column])
    return frame


T = TypeVar("T")


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, each produced in a thread while the one before is consumed.

    A snapshot's reader waits for the server to format and send each chunk (a fifth of the
    cursor's time at 1M rows) and Arrow parses COPY's CSV, both without the GIL, so that work
    overlaps the conversion of the chunk before. One item waits at most; an error is raised where the item
    would have been, and leaving early stops the thread after the item it is producing."""
    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> None:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for item in items:
                put((True, item))
                if stop.is_set():
                    return
            put((False, None))
        except BaseException as error:  # raised in the consumer, where the item was due
            put((False, error))

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            more, value = handoff.get()
            if not more:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        thread.join()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a snapshot allocates millions of objects
    that form no cycles: each full pass would walk every row built so far (at 1M rows,
    more than half of the snapshot's time). The previous state is restored."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class DbChunks:
    """A source's rows in key order, one canonical frame per chunk, and its counts."""

    columns: list[str]
    chunks: Iterator[pd.DataFrame]
    counts: dict[str, int]


def _source_counts(connection: Connection, source: Source) -> dict[str, int]:
    """The source's counts (`Source.counts`), each its own query."""
    return {name: int(connection.execute(source.sql.query(query)).scalar_one()) for name, query in source.counts.items()}


@contextmanager
def db_chunks(
    engine: Engine, source: Source, row_filter: RowFilter = RowFilter(), *, chunk_rows: int = DB_SNAPSHOT_CHUNK_ROWS,
    share_text: bool = True,
) -> Iterator[DbChunks]:
    """The source's query within the filter through a server-side cursor, `chunk_rows` rows at a
    time, each chunk converted (amounts exact ints, keys canonical) while the next is fetched
    (`read_ahead`), so the driver's text and the Row objects of at most three chunks are alive
    (the one converted, the one waiting, the one fetched). With `share_text`, text
    columns that repeat in the first chunk hold one object per distinct value (for frames kept
    whole; chunks written straight to Parquet need not). Rows come in key order."""
    with _gc_paused(), engine.connect() as connection:
        counts = _source_counts(connection, source)
        result = connection.execution_options(yield_per=chunk_rows).execute(snapshot_statement(source, row_filter))
        columns = list(result.keys())
        # The size is passed explicitly: SQLAlchemy 2.1's partitions() without one ignores
        # yield_per and fetches every row at once.
        fetched = read_ahead(result.partitions(chunk_rows))

        def chunks() -> Iterator[pd.DataFrame]:
            shared: dict[str, dict[str, str]] | None = None
            for rows in fetched:
                values = _column_values(rows, columns)
                if shared is None and not share_text:
                    shared = {}
                if shared is None:
                    candidates = {c: v for c, v in values.items()
                                  if c not in (source.key_column, *source.amount_columns)}
                    shared = {column: {} for column in _repetitive_text_columns(candidates)}
                yield _db_chunk_frame(values, source, shared)

        try:
            yield DbChunks(columns, chunks(), counts)
        finally:
            fetched.close()  # the fetching thread ends before the connection closes, however the caller left


_INTEGER_OIDS = (20, 21, 23)  # int8, int2, int4
_NUMERIC_OID = 1700
COPY_ARROW_TYPES: dict[int, pa.DataType] = {
    **dict.fromkeys(_INTEGER_OIDS, pa.int64()), 16: pa.bool_(), 25: pa.string(), 1043: pa.string(),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"),
}
"""PostgreSQL types (by OID) whose CSV text Arrow reads exactly as the driver would, as Arrow types.
A snapshot with a column of another type is read by the cursor (`db_chunks`)."""

COPY_BLOCK_BYTES = 4 << 20
"""CSV bytes Arrow parses per batch: about 14,000 stream rows or 40,000 balance rows."""


@dataclass(frozen=True)
class CopiedRows:
    """A source's rows in key order as Arrow batches (the key as uint64, amounts as text), and its counts."""

    columns: list[str]
    batches: Iterator[pa.RecordBatch]
    counts: dict[str, int]


class _CopyStream(io.RawIOBase):
    """A COPY TO STDOUT as a readable file: the rows psycopg hands over one at a time, joined."""

    def __init__(self, copy: psycopg.Copy) -> None:
        self._copy = copy
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            if not self._pending:
                row = self._copy.read()
                if not row:
                    break
                self._pending = memoryview(row)
            size = min(len(target) - filled, len(self._pending))
            target[filled:filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        return filled


def _copy_types(source: Source, columns: list[str], oids: list[int]) -> dict[str, pa.DataType] | None:
    types: dict[str, pa.DataType] = {}
    for name, oid in zip(columns, oids, strict=True):
        if name == source.key_column:
            # As text, cast to uint64 once read (with a clear error for what is not a u64).
            wanted = pa.string() if oid in (*_INTEGER_OIDS, _NUMERIC_OID) else None
        elif name in source.amount_columns:
            wanted = pa.string() if oid == 25 else None  # queries cast amounts to text
        else:
            wanted = COPY_ARROW_TYPES.get(oid)
        if wanted is None:
            return None
        types[name] = wanted
    return types


def _csv_reader(copy: psycopg.Copy, columns: list[str], types: dict[str, pa.DataType],
                block_bytes: int) -> pa_csv.CSVStreamingReader | None:
    """Arrow's reader of the COPY's CSV; None when the COPY sent no rows (Arrow refuses an empty file)."""
    try:
        return pa_csv.open_csv(
            io.BufferedReader(_CopyStream(copy), buffer_size=1 << 20),
            read_options=pa_csv.ReadOptions(column_names=columns, block_size=block_bytes, use_threads=False),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, true_values=["t"], false_values=["f"], null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as error:
        if str(error) == "Empty CSV file":
            return None
        raise


@contextmanager
def _rows_within(source: Source, block_bytes: int) -> Iterator[None]:
    """Arrow's error for a row longer than its block, as the source's clear one."""
    try:
        yield
    except pa.ArrowInvalid as error:
        if "straddles two block boundaries" not in str(error):
            raise
        raise ValueError(
            f"{source.name}: a row's CSV is longer than the {block_bytes:,}-byte block a streaming sweep parses "
            f"at a time: select narrower columns in its query, or turn streaming off (RECON_SWEEP_CHUNK_ROWS=0) "
            f"({error})") from None


@contextmanager
def db_copied(engine: Engine, source: Source, row_filter: RowFilter = RowFilter(), *,
              block_bytes: int = COPY_BLOCK_BYTES) -> Iterator[CopiedRows | None]:
    """The source's statement within the filter through COPY TO STDOUT as CSV, parsed by Arrow
    `block_bytes` at a time: no Python object per value (a 1M-row streams snapshot stored in
    about half the cursor's time). None when a column's type is not one of `COPY_ARROW_TYPES`
    (or the key is not an integer, or an amount not text): read those with `db_chunks`. Rows
    come in key order; a row longer than the block is a clear error."""
    statement = snapshot_statement(source, row_filter)
    with engine.connect() as connection:
        described = connection.execute(statement.limit(0))
        columns = list(described.keys())
        oids = [int(column.type_code) for column in described.cursor.description]
        described.close()
        types = _copy_types(source, columns, oids)
        if types is None:
            yield None
            return
        counts = _source_counts(connection, source)
        compiled = statement.compile(dialect=connection.dialect)
        copy_statement = psycopg.sql.SQL(read_sql("snapshots/copy_csv.sql")).format(  # type: ignore[arg-type]
            query=psycopg.sql.SQL(str(compiled)))  # type: ignore[arg-type]
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(copy_statement, compiled.params) as copy:
            with _rows_within(source, block_bytes):  # the first block is parsed here
                reader = _csv_reader(copy, columns, types, block_bytes)

            def parsed() -> Iterator[pa.RecordBatch]:
                if reader is None:
                    return
                with _rows_within(source, block_bytes):
                    yield from reader

            def batches() -> Iterator[pa.RecordBatch]:
                for batch in parsed():
                    try:
                        keys = pc.cast(batch.column(source.key_column), pa.uint64())
                    except pa.ArrowInvalid as error:
                        raise ValueError(f"{source.name}: a {source.key_column} that is not a u64 key ({error})") from None
                    yield batch.set_column(batch.schema.get_field_index(source.key_column), source.key_column, keys)

            # Arrow parses (without the GIL) the batch after the one being converted and checked.
            fetched = read_ahead(batches())
            try:
                yield CopiedRows(columns, fetched, counts)
            finally:
                fetched.close()  # the reading thread ends before the COPY and its connection close


def empty_db_frame(source: Source, columns: list[str]) -> pd.DataFrame:
    """No rows, but the query's columns (and the canonical key dtype)."""
    return _db_chunk_frame(_column_values([], columns), source, {})


def snapshot_db(
    engine: Engine, source: Source, row_filter: RowFilter = RowFilter(), *, chunk_rows: int = DB_SNAPSHOT_CHUNK_ROWS
) -> DbSnapshot:
    """Run the source's query within the filter; amounts become exact ints, keys canonical.

    The rows stream in chunks (`db_chunks`), so memory holds the frame built so far plus one
    chunk, not every row at once in the driver, as Row objects and as the frame.
    """
    taken_at = datetime.now(UTC)
    with db_chunks(engine, source, row_filter, chunk_rows=chunk_rows) as snapshot:
        chunks = list(snapshot.chunks)
    frame = pd.concat(chunks, ignore_index=True) if chunks else empty_db_frame(source, snapshot.columns)
    return DbSnapshot(source=source.name, frame=frame, taken_at=taken_at, scope=row_filter.describe(),
                      only_keys=row_filter.only_keys, counts=snapshot.counts)


def data_key_ledger_keys(key_source: DataKey, key_kind: KeyKind, contract_id: str, keys: Sequence[Any]) -> list[str]:
    """The `Variant(key)` ledger key of each key on the contract."""
    if key_kind is KeyKind.U64:
        return chain_keys.u64_entry_keys(contract_id, key_source.variant, [int(k) for k in keys])
    return chain_keys.address_entry_keys(contract_id, key_source.variant, [str(k) for k in keys])


@dataclass(frozen=True)
class ReadStats:
    latest_ledger: int | None
    requests: int
    failed_batches: int


def _shared_values(column: np.ndarray, seen: dict[str, str]) -> np.ndarray:
    """Equal strings of a column as one object each (`seen` carries them across batches)."""
    return object_array([seen.setdefault(v, v) if isinstance(v, str) else v for v in column.tolist()])


def decode_batch(layout: Layout, ledger_keys: Sequence[str], entries: Sequence[str]) -> DecodedBatch:
    """A batch decoded by the layout's batch decoder, or one by one when it has none."""
    if layout.decode_many is not None:
        return layout.decode_many(ledger_keys, entries)
    return DecodedBatch.of(layout.columns, [decode_entry(layout.decode, key, entry)
                                            for key, entry in zip(ledger_keys, entries, strict=True)])


def read_entries(
    reader: ChainReader,
    entity: Entity,
    key_column: str,
    key_kind: KeyKind,
    keys: pd.Series,
    ledger_keys: pd.Series,
    *,
    absent: pd.Series | None = None,
    context: pd.DataFrame | None = None,
    progress: ProgressCallback | None = None,
    versions: KnownVersions | None = None,
) -> tuple[pd.DataFrame, ReadStats]:
    """Read and decode one entry per key (aligned `keys`, `ledger_keys`); every key gets a row.

    `read_status` says what happened: `ok` (decoded), `missing` (no such entry on
    chain), `error` (the batch failed after retries, or the entry does not follow its
    layout; `read_error` says which and `raw_xdr` keeps the payload) or `unchanged`
    (with `versions`: compared before at this `last_modified_ledger`, so not decoded
    again). A key absent on chain whose `absent` value is set reads as that value
    (`ok`). `context` columns are kept beside the read. Entries are decoded batch by
    batch as they arrive, column by column; the raw XDR and the ledger key are kept only
    for rows with a problem. Text values that repeat (a status, a token) are one
    object per distinct value. So memory follows the decoded frame.
    """
    key_values = object_array(list(keys))
    ledger_key_list = list(ledger_keys)
    ledger_key_values = object_array(ledger_key_list)
    # Each ledger key is requested once; rows sharing one (two users with one wallet) all get its entry.
    position_of = dict(zip(ledger_key_list, range(len(ledger_key_list)), strict=True))
    """Each ledger key (in the order first seen) and its row; where rows share keys, `positions_of`."""
    shares_keys = len(position_of) < len(ledger_key_list)
    positions_of: dict[str, list[int]] = {}
    if shares_keys:
        for position, ledger_key in enumerate(ledger_key_list):
            positions_of.setdefault(ledger_key, []).append(position)
    decoded = entity.layout.columns
    columns = [key_column, *decoded, *CHAIN_META_COLUMNS]
    parts: list[dict[str, np.ndarray]] = []
    returned: set[str] = set()
    shared: dict[str, dict[str, str]] | None = None
    """Per decoded text column that repeats (judged on the first rows read): one object per value."""

    def on_batch(batch: EntryBatch) -> None:
        nonlocal shared
        if not batch.keys:
            return
        returned.update(batch.keys)
        result = decode_batch(entity.layout, batch.keys, batch.xdrs)
        if shares_keys:
            pairs = [(entry, position) for entry, key in enumerate(batch.keys) for position in positions_of[key]]
            of_entry = np.array([entry for entry, _ in pairs], dtype=np.intp)
            rows = np.array([position for _, position in pairs], dtype=np.intp)
        else:
            of_entry = np.arange(len(batch.keys), dtype=np.intp)
            rows = np.fromiter(map(position_of.__getitem__, batch.keys), dtype=np.intp, count=len(batch.keys))
        failed = np.zeros(len(batch.keys), dtype=bool)
        failed[list(result.errors)] = True
        error_texts = np.full(len(batch.keys), None, dtype=object)
        error_texts[list(result.errors)] = list(result.errors.values())
        modified = object_array(batch.last_modified_ledgers)[of_entry]
        status = np.full(len(rows), READ_OK, dtype=object)  # one str object for every row
        status[failed[of_entry]] = READ_ERROR
        if versions is not None:
            unchanged = np.fromiter((versions.unchanged(key, ledger) for key, ledger
                                     in zip(key_values[rows].tolist(), modified.tolist(), strict=True)),
                                    dtype=bool, count=len(rows))
            status[unchanged] = READ_UNCHANGED
        ok, error = status == READ_OK, status == READ_ERROR
        if shared is None:
            shared = {column: {} for column in
                      _repetitive_text_columns({c: result.values[c][of_entry[ok]].tolist() for c in decoded})}
        part = {key_column: key_values[rows], "ledger_key": np.where(ok, None, ledger_key_values[rows]),
                "read_status": status, "read_error": np.where(error, error_texts[of_entry], None),
                "raw_xdr": np.where(error, object_array(batch.xdrs)[of_entry], None),
                "last_modified_ledger": modified,
                "live_until_ledger": object_array(batch.live_until_ledgers)[of_entry],
                "ledger_sequence": np.full(len(rows), batch.read_at_ledger, dtype=object), "_position": rows}
        for column in decoded:
            values = np.where(ok, result.values[column][of_entry], None)
            part[column] = _shared_values(values, shared[column]) if column in shared else values
        parts.append(part)

    result = reader.get_entries(list(position_of), progress=progress, on_batch=on_batch)
    absent_values = list(absent) if absent is not None else None
    rest: dict[str, list[Any]] = {column: [] for column in [*columns, "_position"]}
    for position, ledger_key in enumerate(ledger_key_list):
        if ledger_key in returned:
            continue
        row: dict[str, Any] = {key_column: key_values[position], "ledger_key": ledger_key, "_position": position}
        if ledger_key in result.failed:
            row.update(read_status=READ_ERROR, read_error=f"read failed: {result.failed[ledger_key]}")
        elif absent_values is not None and absent_values[position] is not None:
            row.update(dict.fromkeys(decoded, absent_values[position]), read_status=READ_OK, ledger_key=None,
                       ledger_sequence=result.latest_ledger)
        else:
            row.update(read_status=READ_MISSING, ledger_sequence=result.latest_ledger)
        for column, values in rest.items():
            values.append(row.get(column))
    parts.append({column: object_array(values) for column, values in rest.items()})

    frame = pd.DataFrame({column: pd.Series(np.concatenate([part[column] for part in parts]), dtype=object)
                          for column in columns})
    positions = np.concatenate([part["_position"] for part in parts]).astype(np.intp)
    if context is not None and len(frame):
        kept = context.reset_index(drop=True).iloc[positions].reset_index(drop=True)
        frame = pd.concat([frame, kept.astype(object)], axis=1)
    if len(frame):
        frame[key_column] = key_kind.normalize(frame[key_column])
    return frame, ReadStats(result.latest_ledger, result.requests, result.failed_batches)


def decode_entry(decode: Callable[[str], dict[str, Any]], ledger_key: str,
                  data_xdr: str) -> tuple[dict[str, Any] | None, str | None]:
    """The entry's canonical values, or why it is not the entry its key names / does not decode.

    Any failure of a decoder on one entry (its `DecodeError`, or anything else a malformed
    payload provokes, e.g. a symbol that is not text) is that entry's CHAIN_READ_ERROR, never
    the end of the read.
    """
    mismatch = fastxdr.entry_key_mismatch(ledger_key, data_xdr)
    if mismatch is not None:
        return None, f"undecodable entry: {mismatch}"
    try:
        return decode(data_xdr), None
    except DecodeError as error:
        return None, f"undecodable entry: {error}"
    except Exception as error:  # a malformed payload must not end the read: see above
        return None, f"undecodable entry: {type(error).__name__}: {error}"


def decoded_rows(chain: pd.DataFrame) -> pd.DataFrame:
    return chain[chain["read_status"] == READ_OK]
