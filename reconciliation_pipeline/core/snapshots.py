"""Snapshots of both sides as dataframes in canonical columns."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy.engine import Engine

from reconciliation_pipeline.chain.decode import DecodeError
from reconciliation_pipeline.chain.reader import ChainReader, FetchedEntry, ProgressCallback
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.spec import ReconSpec

if TYPE_CHECKING:
    from reconciliation_pipeline.core.entry_versions import KnownVersions

READ_OK = "ok"
READ_MISSING = "missing"
READ_ERROR = "error"
READ_UNCHANGED = "unchanged"
"""Read, but its `last_modified_ledger` is the one recorded when it was last compared: not decoded."""

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


@dataclass(frozen=True)
class DbSnapshot:
    frame: pd.DataFrame
    taken_at: datetime


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


def _db_chunk_frame(values: dict[str, list[Any]], spec: ReconSpec, shared: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One chunk in canonical form: amounts exact ints, keys canonical, and equal strings
    of `shared`'s columns one object across the whole snapshot.

    Converted column by column before the frame is built: a frame built from the rows
    holds them in one 2-D block whose views would keep every original object (the
    amounts' text, the unshared strings) alive. The driver makes a new str per row (a
    56-character address is ~105 bytes each time); sharing keeps values equal and the
    dtype object, and pickling (Dagster's IO manager) then writes each distinct value once.
    """
    for column in spec.amount_columns:
        values[column] = to_exact_ints(pd.Series(values[column], dtype=object)).tolist()
    for column, seen in shared.items():
        values[column] = [seen.setdefault(v, v) if isinstance(v, str) else v for v in values[column]]
    frame = pd.DataFrame({column: pd.Series(column_values, dtype=object) for column, column_values in values.items()})
    frame[spec.key_column] = spec.normalize_keys(frame[spec.key_column])
    return frame


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


def snapshot_db(
    engine: Engine, spec: ReconSpec, params: Mapping[str, Any], *, chunk_rows: int = DB_SNAPSHOT_CHUNK_ROWS
) -> DbSnapshot:
    """Run the spec's snapshot query; amounts become exact ints, keys canonical.

    The query streams through a server-side cursor `chunk_rows` rows at a time and
    each chunk is converted before the next is fetched, so the driver's text and
    the Row objects of only one chunk are alive beside the frame. Text columns that
    repeat in the first chunk hold one object per distinct value.
    """
    taken_at = datetime.now(UTC)
    chunks: list[pd.DataFrame] = []
    shared: dict[str, dict[str, str]] | None = None
    with _gc_paused(), engine.connect() as connection:
        result = connection.execution_options(yield_per=chunk_rows).execute(
            sql.query(spec.snapshot_query), dict(params)
        )
        columns = list(result.keys())
        # The size is passed explicitly: SQLAlchemy 2.1's partitions() without one ignores
        # yield_per and fetches every row at once.
        for rows in result.partitions(chunk_rows):
            values = _column_values(rows, columns)
            if shared is None:
                candidates = {c: v for c, v in values.items() if c not in (spec.key_column, *spec.amount_columns)}
                shared = {column: {} for column in _repetitive_text_columns(candidates)}
            chunks.append(_db_chunk_frame(values, spec, shared))
    # No rows is still a frame with the query's columns (and the canonical key dtype).
    frame = pd.concat(chunks, ignore_index=True) if chunks else _db_chunk_frame(_column_values([], columns), spec, {})
    return DbSnapshot(frame=frame, taken_at=taken_at)


def snapshot_chain(
    reader: ChainReader,
    spec: ReconSpec,
    contract_id: str,
    keys: Iterable[Any],
    progress: ProgressCallback | None = None,
    versions: KnownVersions | None = None,
) -> pd.DataFrame:
    """Read and decode one entry per key; every key gets a row.

    `read_status` says what happened: `ok` (decoded), `missing` (no such entry
    on chain), `error` (the batch failed after retries, or the entry does not
    follow its layout; `read_error` says which and `raw_xdr` keeps the payload)
    or `unchanged` (with `versions`: compared before at this `last_modified_ledger`,
    so not decoded again).
    Entries are decoded batch by batch as they arrive, into columns. What only rows
    with a problem need is kept only for them: the raw XDR, and the ledger key
    (`entry_ledger_keys` rebuilds it for decoded rows from `attrs["contract_id"]`). Text
    values that repeat (a status, a token) are one object per distinct value. So
    memory follows the decoded frame.
    """
    key_list = list(dict.fromkeys(keys))
    ledger_keys = [spec.layout.ledger_key(contract_id, k) for k in key_list]
    key_of = dict(zip(ledger_keys, key_list, strict=True))
    columns = [spec.key_column, *spec.layout.columns, *CHAIN_META_COLUMNS]
    data: dict[str, list[Any]] = {column: [] for column in columns}
    decode = spec.layout.decode
    returned: set[str] = set()
    shared: dict[str, dict[str, str]] = {}
    """Per decoded text column that repeats (judged on the first batch): one object per value."""

    def append(key: Any, ledger_key: str, values: dict[str, Any], **meta: Any) -> None:
        data[spec.key_column].append(key)
        for column in spec.layout.columns:
            value = values.get(column)
            seen = shared.get(column)
            data[column].append(seen.setdefault(value, value) if seen is not None and isinstance(value, str)
                                else value)
        data["ledger_key"].append(None if meta.get("read_status") == READ_OK else ledger_key)
        for column in ("read_status", "read_error", "raw_xdr", "last_modified_ledger", "live_until_ledger",
                       "ledger_sequence"):
            data[column].append(meta.get(column))

    def on_batch(entries: list[tuple[str, FetchedEntry]]) -> None:
        rows = []
        for ledger_key, fetched in entries:
            returned.add(ledger_key)
            meta = {
                "last_modified_ledger": fetched.last_modified_ledger,
                "live_until_ledger": fetched.live_until_ledger,
                "ledger_sequence": fetched.read_at_ledger,
            }
            key = key_of[ledger_key]
            if versions is not None and versions.unchanged(key, fetched.last_modified_ledger):
                rows.append((key, ledger_key, {}, {**meta, "read_status": READ_UNCHANGED}))
                continue
            try:
                rows.append((key, ledger_key, decode(fetched.data_xdr), {**meta, "read_status": READ_OK}))
            except DecodeError as error:
                rows.append((key, ledger_key, {}, {**meta, "read_status": READ_ERROR, "raw_xdr": fetched.data_xdr,
                                                   "read_error": f"undecodable entry: {error}"}))
        if not shared and not data[spec.key_column]:
            decoded = {column: [r[2].get(column) for r in rows] for column in spec.layout.columns}
            shared.update({column: {} for column in _repetitive_text_columns(decoded)})
        for key, ledger_key, values, meta in rows:
            append(key, ledger_key, values, **meta)

    result = reader.get_entries(ledger_keys, progress=progress, on_batch=on_batch)
    for key, ledger_key in zip(key_list, ledger_keys, strict=True):
        if ledger_key in returned:
            continue
        if ledger_key in result.failed:
            append(key, ledger_key, {}, read_status=READ_ERROR, read_error=f"read failed: {result.failed[ledger_key]}")
        else:
            append(key, ledger_key, {}, read_status=READ_MISSING, ledger_sequence=result.latest_ledger)

    frame = pd.DataFrame({column: pd.Series(values, dtype=object) for column, values in data.items()})
    if len(frame):
        frame[spec.key_column] = spec.normalize_keys(frame[spec.key_column])
    frame.attrs["contract_id"] = contract_id
    frame.attrs["ledger_sequence"] = result.latest_ledger
    frame.attrs["rpc_requests"] = result.requests
    frame.attrs["failed_batches"] = result.failed_batches
    frame.attrs["entries_unchanged"] = sum(status == READ_UNCHANGED for status in data["read_status"])
    return frame


def entry_ledger_keys(spec: ReconSpec, contract_id: str | None, chain: pd.DataFrame) -> pd.Series:
    """Each row's ledger key: `snapshot_chain` keeps it for rows with a problem and it is
    rebuilt for decoded rows from the contract the snapshot read (`attrs["contract_id"]`)."""
    kept = chain["ledger_key"]
    if contract_id is None or kept.notna().all():
        return kept
    return pd.Series(
        [k if isinstance(k, str) else spec.layout.ledger_key(contract_id, key)
         for k, key in zip(kept, chain[spec.key_column], strict=True)],
        index=chain.index, dtype=object,
    )


def decoded_rows(chain: pd.DataFrame) -> pd.DataFrame:
    return chain[chain["read_status"] == READ_OK]


def compared_scope(db: pd.DataFrame, chain: pd.DataFrame, key_column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows a run compares: entities whose chain entry was `unchanged` (compared
    before, nothing new on either side) are left out of both."""
    unchanged = chain["read_status"] == READ_UNCHANGED
    if not unchanged.any():
        return db, chain
    return db[~db[key_column].isin(chain.loc[unchanged, key_column])], chain[~unchanged]
