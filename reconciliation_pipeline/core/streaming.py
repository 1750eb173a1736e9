"""A streaming full sweep: both sides in key order, diffed chunk by chunk.

A full sweep used to hold every row of both sides as whole frames, and the IO
manager pickled each between steps (about 2 GiB per million entities). Where a
run compares every entity of a u64-keyed source (a nightly partition, or an
incremental scope's full sweep), the steps instead:

- `db_<source>` reads the query in key order through a server-side cursor,
  `sweep_chunk_rows` rows at a time. Each chunk's duplicate keys and
  invariants are checked as it arrives (a key never spans two chunks), and the
  chunk is appended to a Parquet file of the run (amounts as text: exact at 39
  digits). It hands on a `DbSnapshot` without rows that names the file.
- `chain_<entity>` cuts the file into tasks (a chunk shared among the
  workers). The chain-only keys (from events) that fall in a task's key range
  join it, in order; worker processes read each task's entries 200 per
  request, decode them, validate their invariants, diff them against the rows
  by the same diff as a whole-frame run and fold them into running aggregates
  (escrow solvency); the step merges what they hand back. The workers share
  the run's requests in flight, so one's CPU work overlaps another's network
  wait, on every core. It hands on the findings, what was checked (by key),
  the folds, and only the rows the findings are about.
- `<name>_discrepancies` persists them as before, in the run's one transaction.

Memory then holds a few chunks, not the fleet. Runs that compare a subset
(increments, shards, a sensor's keys), address-keyed sources, and domains whose
hooks or steps need whole frames keep the whole-frame path.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import gc
import itertools
import multiprocessing as mp
import multiprocessing.util as mp_util
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyroaring import BitMap64

from reconciliation_pipeline.chain.addresses import valid_address_mask
from reconciliation_pipeline.chain.reader import ChainReader
from reconciliation_pipeline.core.diff import (
    diff_entity_keys,
    invariant_findings,
    key_address_column,
    resolve_tolerances,
)
from reconciliation_pipeline.core.findings import concat_findings
from reconciliation_pipeline.core.metadata import frame_metadata, read_metadata
from reconciliation_pipeline.core.results import (
    ChainSnapshot,
    Checked,
    DbSnapshot,
    DomainInputs,
    KeyedEntities,
    StepContext,
    key_set,
)
from reconciliation_pipeline.core.scopes import RowFilter
from reconciliation_pipeline.core.snapshots import (
    ANSWERED,
    READ_MISSING,
    CopiedRows,
    data_key_ledger_keys,
    db_chunks,
    db_copied,
    decoded_rows,
    empty_db_frame,
    read_entries,
    to_exact_ints,
)
from reconciliation_pipeline.core.spec import (
    Aggregate,
    ChangeEvents,
    DataKey,
    DomainSpec,
    Entity,
    KeyKind,
    Partitioning,
    PerRow,
    Scope,
    Source,
)

if TYPE_CHECKING:
    from reconciliation_pipeline.core.steps import Output
    from reconciliation_pipeline.core.watermarks import SweepPlan

SUMMED_READ_METADATA = ("dagster/row_count", "rpc_requests", "failed_batches", "entries_ok", "entries_missing",
                        "entries_unreadable", "entries_undecodable", "entries_not_read_time_limit",
                        "entries_unchanged", "keys_not_read_invalid_address")


STALE_SWEEP_S = 2 * 24 * 3600
"""A stored snapshot this old belongs to a run that stopped before its findings step (the
longest run budget is hours): the next sweep removes it."""


def sweep_directory(run_id: str) -> Path:
    """Where a run's stored snapshots live (removed once its findings are persisted)."""
    return Path(tempfile.gettempdir()) / "recon-sweeps" / run_id


def _remove_stale_sweeps(now: float) -> None:
    root = sweep_directory("x").parent
    for directory in root.glob("*") if root.exists() else ():
        try:
            stale = now - directory.stat().st_mtime > STALE_SWEEP_S
        except FileNotFoundError:
            continue
        if stale:
            shutil.rmtree(directory, ignore_errors=True)


# -- which runs stream ------------------------------------------------------------------


def folded_aggregates(spec: DomainSpec, scope: Scope, entity: Entity) -> tuple[Aggregate, ...]:
    """The cross-entity checks of this run that read the entity (they run in scopes that compare all)."""
    if not scope.aggregates or scope.incremental is not None:
        return ()
    return tuple(a for a in spec.aggregates if entity.name in a.entities)


def streams(ctx: StepContext, spec: DomainSpec, scope: Scope, source: Source, plan: SweepPlan | None,
            only_keys: tuple[str, ...] | None) -> bool:
    """Whether this run of the source is a streaming sweep: it compares every row of a u64-keyed
    source whose entities' keys are built per row, and nothing in the domain needs whole frames."""
    if ctx.settings.sweep_chunk_rows <= 0 or only_keys is not None or source.key_kind is not KeyKind.U64:
        return False
    if scope.partitioning is Partitioning.DAILY_SHARDS:
        return False
    incremental = scope.incremental
    if incremental is not None and (plan is None or not plan.full
                                    or not isinstance(incremental.changes, ChangeEvents)):
        return False
    hooks = spec.hooks
    if any(h is not None for h in (hooks.findings, hooks.exclude_chain_keys, hooks.repairs, hooks.skip_compare)):
        return False
    if spec.steps_of(scope):
        return False
    entities = [e for e in spec.entities_of(scope) if e.source_name == source.name]
    if len(entities) != 1 or not isinstance(entities[0].key_source, DataKey | PerRow):
        return False
    aggregates = folded_aggregates(spec, scope, entities[0])
    return all(a.fold is not None and a.entities == (entities[0].name,) for a in aggregates)


# -- the database side, stored ------------------------------------------------------------


@dataclass(frozen=True)
class StoredRows:
    """A database snapshot in key order in a Parquet file: amounts as text, the key as uint64."""

    path: str | None
    """None when the snapshot has no rows."""
    rows: int
    source: Source
    empty: pd.DataFrame
    """The snapshot's columns, no rows: what a chunk looks like."""

    def slices(self, rows_per_slice: int) -> list[tuple[int, int, int]]:
        """The stored rows cut into slices of `rows_per_slice` (the last may be shorter), in key
        order: (first row, end row, last key). Keys are unique in the file (duplicates were set
        aside as findings), so any cut keeps a key whole; a slice may span stored chunks."""
        if self.path is None:
            return []
        with pq.ParquetFile(self.path) as parquet:
            ends = [*range(rows_per_slice, self.rows, rows_per_slice), self.rows]
            last_keys: list[int] = []
            offset = 0
            for group in range(parquet.num_row_groups):
                keys = parquet.read_row_group(group, columns=[self.source.key_column]).column(0)
                last_keys += [keys[end - 1 - offset].as_py() for end in ends[len(last_keys):]
                              if end <= offset + len(keys)]
                offset += len(keys)
        return list(zip([0, *ends[:-1]], ends, last_keys, strict=True))

    def rows_of(self, start: int, end: int) -> pd.DataFrame:
        """Rows [start, end) of the file as a canonical frame (as `snapshot_db` builds it).

        Only the stored chunks (row groups) holding them are read, and the frame copies its values
        out of Arrow's buffers: a reader over the whole file (`iter_batches`) held Arrow buffers
        across chunks, 32 MiB more every few hundred thousand rows (113 MiB of Arrow memory at 2M)."""
        assert self.path is not None
        parts = []
        with pq.ParquetFile(self.path) as parquet:
            offset = 0
            for group in range(parquet.num_row_groups):
                rows = parquet.metadata.row_group(group).num_rows
                if offset < end and start < offset + rows:
                    first = max(start - offset, 0)
                    parts.append(parquet.read_row_group(group).slice(first, min(end - offset, rows) - first))
                offset += rows
        return self._frame(pa.concat_tables(parts))

    def _frame(self, table: pa.Table) -> pd.DataFrame:
        return canonical_frame(table, self.source, list(self.empty.columns))


def canonical_frame(table: pa.Table, source: Source, columns: list[str]) -> pd.DataFrame:
    """Stored (or copied) rows as the canonical frame `snapshot_db` builds: the key uint64,
    amounts exact ints, text and other values as objects, timestamps as datetime64."""
    key, amounts = source.key_column, set(source.amount_columns)
    values_of: dict[str, pd.Series] = {}
    for name, values in zip(table.schema.names, table.columns, strict=True):
        if name == key:
            values_of[name] = pd.Series(np.array(values.to_numpy(), dtype=np.uint64))  # a copy, not a view
        elif name in amounts:
            values_of[name] = to_exact_ints(pd.Series(values.to_numpy(zero_copy_only=False), dtype=object))
        elif pa.types.is_timestamp(values.type):
            # A datetime64 column, not one datetime object per value as to_pylist builds
            # them: nothing compares these (they scope the rows and date the findings).
            values_of[name] = values.to_pandas().copy(deep=True)
        elif pa.types.is_string(values.type):
            values_of[name] = pd.Series(values.to_numpy(zero_copy_only=False), dtype=object)
        else:
            values_of[name] = pd.Series(values.to_pylist(), dtype=object)
    return pd.DataFrame(values_of)[columns]


class _StoredRowsWriter:
    """Appends canonical chunks to the run's Parquet file; the schema is the first chunk's."""

    def __init__(self, path: Path, source: Source) -> None:
        self.path = path
        self.source = source
        self.schema: pa.Schema | None = None
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def _array(self, name: str, values: pd.Series) -> pa.Array:
        if name == self.source.key_column:
            return pa.array(values.to_numpy(dtype=np.uint64), pa.uint64())
        if name in self.source.amount_columns:
            # Text: an i128 needs 39 digits, beyond any Parquet decimal of 38. Arrow writes the
            # digits of exact ints within int64 (almost all) in one cast, the others one by one.
            cells = values.to_numpy()
            if all(t is int or t is type(None) for t in set(map(type, cells))):
                try:
                    return pa.array(cells, pa.int64()).cast(pa.string())
                except OverflowError:
                    pass
            return pa.array([None if v is None else str(v) for v in cells], pa.string())
        wanted = self.schema.field(name).type if self.schema is not None else None
        array = pa.array(values.tolist(), type=wanted)
        return array.cast(pa.string()) if wanted is None and pa.types.is_null(array.type) else array

    def write(self, frame: pd.DataFrame) -> None:
        self.write_table(pa.table({name: self._array(name, frame[name]) for name in frame.columns}))

    def write_table(self, table: pa.Table) -> None:
        if self.writer is None:
            self.schema = table.schema
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.schema))
        self.rows += table.num_rows

    def close(self) -> str | None:
        if self.writer is None:
            return None
        self.writer.close()
        return str(self.path)


@dataclass(frozen=True)
class _SourceChunk:
    """Rows of the source in key order: the canonical frame and, where they were copied, the
    same rows as Arrow (written to the stored file as they are); None: written from the frame."""

    frame: pd.DataFrame
    table: pa.Table | None = None

    def __len__(self) -> int:
        return len(self.frame)

    def where(self, mask: np.ndarray) -> _SourceChunk:
        table = self.table.filter(pa.array(mask)) if self.table is not None else None
        return _SourceChunk(self.frame[mask].reset_index(drop=True), table)

    def then(self, other: _SourceChunk) -> _SourceChunk:
        tables = (self.table, other.table)
        table = pa.concat_tables(tables) if all(t is not None for t in tables) else None  # type: ignore[arg-type]
        return _SourceChunk(pd.concat([self.frame, other.frame], ignore_index=True), table)


def _whole_keys(chunks: Iterator[_SourceChunk], key: str) -> Iterator[_SourceChunk]:
    """The chunks re-cut so that no key spans two (rows sharing a key are one duplicate finding):
    each chunk's rows of its last key wait for the next. Keys must come in order."""
    carry: _SourceChunk | None = None
    last: int | None = None
    for chunk in chunks:
        if not len(chunk):
            continue
        keys = chunk.frame[key].to_numpy()
        if np.any(keys[1:] < keys[:-1]) or (last is not None and keys[0] < last):
            raise ValueError(f"the snapshot's rows are not in {key} order: a streaming sweep needs them sorted")
        last = int(keys[-1])
        if carry is not None:
            chunk = carry.then(chunk)
        tail = (chunk.frame[key] == last).to_numpy()
        carry = chunk.where(tail)
        if not tail.all():
            yield chunk.where(~tail)
    if carry is not None:
        yield carry


@dataclass(frozen=True)
class _SourceRows:
    columns: list[str]
    chunks: Iterator[_SourceChunk]
    counts: dict[str, int]
    read_by: str
    """`copy` (COPY as CSV, parsed by Arrow) or `cursor`."""


def _copied_chunks(copied: CopiedRows, source: Source, chunk_rows: int) -> Iterator[_SourceChunk]:
    """Arrow's batches cut into chunks of `chunk_rows` rows (views, not copies), as the cursor's."""
    for batch in copied.batches:
        for offset in range(0, batch.num_rows, chunk_rows):
            table = pa.Table.from_batches([batch.slice(offset, chunk_rows)])
            yield _SourceChunk(canonical_frame(table, source, copied.columns), table)


@contextmanager
def _source_rows(ctx: StepContext, source: Source, row_filter: RowFilter) -> Iterator[_SourceRows]:
    """The source's rows in key order through COPY where Arrow reads every column's type, else
    through the server-side cursor."""
    with db_copied(ctx.engine, source, row_filter) as copied:
        if copied is not None:
            yield _SourceRows(copied.columns, _copied_chunks(copied, source, ctx.settings.sweep_chunk_rows),
                              copied.counts, "copy")
            return
    with db_chunks(ctx.engine, source, row_filter, chunk_rows=ctx.settings.sweep_chunk_rows,
                   share_text=False) as snapshot:
        yield _SourceRows(snapshot.columns, (_SourceChunk(frame) for frame in snapshot.chunks),
                          snapshot.counts, "cursor")


def stored_db_step(ctx: StepContext, source: Source, row_filter: RowFilter, ledger_at_snapshot: int | None) -> Output:
    """The source's rows stored chunk by chunk in key order, duplicates and invariants checked once."""
    from reconciliation_pipeline.core.steps import Output, _without_duplicate_keys, invariants_check

    taken_at = datetime.now(UTC)
    _remove_stale_sweeps(taken_at.timestamp())
    writer = _StoredRowsWriter(sweep_directory(ctx.run.run_id) / f"{source.name}.parquet", source)
    duplicates: list[str] = []
    duplicate_found: list[pd.DataFrame] = []
    invariant_found: list[pd.DataFrame] = []
    validated = 0
    with _source_rows(ctx, source, row_filter) as snapshot:
        empty = empty_db_frame(source, snapshot.columns)
        for chunk in _whole_keys(snapshot.chunks, source.key_column):
            part = _without_duplicate_keys(DbSnapshot(source.name, chunk.frame, taken_at, ""), source)
            duplicates += part.duplicate_keys
            duplicate_found.append(part.invariant_findings)
            if source.invariants is not None:
                rows = source.invariants.rows(part.frame)
                validated += len(rows)
                invariant_found.append(invariant_findings(source, source.key_column, source.invariants.model, rows,
                                                side="database", severity=source.invariants.severity))
            if part.duplicate_keys:
                chunk = chunk.where(~chunk.frame[source.key_column].astype(str).isin(part.duplicate_keys).to_numpy())
            if chunk.table is not None:
                writer.write_table(chunk.table)
            elif len(chunk):
                writer.write(chunk.frame)
    stored = StoredRows(path=writer.close(), rows=writer.rows, source=source, empty=empty)
    violations = concat_findings(invariant_found)
    snapshot_result = DbSnapshot(source=source.name, frame=empty, taken_at=taken_at, scope=row_filter.describe(),
                                 counts=snapshot.counts,
                                 invariant_findings=concat_findings([*duplicate_found, violations]),
                                 duplicate_keys=tuple(duplicates), ledger_at_snapshot=ledger_at_snapshot,
                                 stored=stored, rows=stored.rows)
    checks: tuple[Any, ...] = ()
    if source.invariants is not None:
        checks = (invariants_check(source.invariants, violations, validated, "database"),)
    ctx.log.info(f"db_{source.name}: {stored.rows} rows ({snapshot_result.scope}) stored for a streaming sweep")
    return Output(snapshot_result, {
        **frame_metadata(empty), "dagster/row_count": stored.rows, "snapshot_at": taken_at.isoformat(),
        "rows_in_scope": snapshot_result.scope, "duplicate_keys": len(duplicates), **snapshot.counts,
        "streaming_sweep": True, "read_by": snapshot.read_by,
    }, checks)


# -- the chain side, read and diffed chunk by chunk ---------------------------------------


@dataclass(frozen=True)
class StreamedDiff:
    """What a streaming sweep of one entity found, diffing each chunk as it was read."""

    source: str
    findings: pd.DataFrame
    """The entity's diff (the chain side's invariants are the snapshot's, as in any run)."""
    checked: Checked
    db_rows: pd.DataFrame
    """The database rows the findings are about (what hooks and money stamping look up)."""
    folds: dict[str, Any] = field(default_factory=dict)
    """Aggregate name -> its running aggregate over every chunk."""
    chunks: int = 0


@dataclass(frozen=True)
class _ChunkRead:
    db: pd.DataFrame
    frame: pd.DataFrame
    known: pd.Series
    """The database keys that were read (rows with a valid address)."""
    not_read_invalid: pd.Series
    new_keys: int
    latest_ledger: int | None
    requests: int
    failed_batches: int


def _read_chunk(ctx: StepContext, reader: Any, entity: Entity, db: pd.DataFrame, chain_only: np.ndarray,
                contract_id: str | None) -> _ChunkRead:
    """One chunk's entries: its readable rows' keys and the chain-only keys of its range."""
    key = entity.key
    address_column = key_address_column(entity)
    valid = (valid_address_mask(db[address_column], allow_muxed=entity.muxed_accounts).to_numpy(dtype=bool)
             if address_column is not None else np.ones(len(db), dtype=bool))
    readable = db[valid]
    known = readable[key]
    new_keys = np.setdiff1d(chain_only, known.to_numpy(dtype=np.uint64), assume_unique=True)
    absent, context = None, None
    if isinstance(entity.key_source, DataKey):
        assert contract_id is not None
        keys = pd.Series([*known.tolist(), *new_keys.tolist()], dtype=object)
        ledger_keys = pd.Series(data_key_ledger_keys(entity.key_source, entity.kind, contract_id, list(keys)),
                                dtype=object)
    else:
        assert isinstance(entity.key_source, PerRow)
        # As in a whole-frame run, a per-row key needs its row: chain-only keys are not read.
        ordered = readable.reset_index(drop=True)
        built = entity.key_source.build(ordered, ctx.contracts)
        keys, ledger_keys, absent, context = ordered[key], built.keys, built.absent, built.context
    frame, stats = read_entries(reader, entity, key, entity.kind, keys, ledger_keys, absent=absent, context=context)
    return _ChunkRead(db=db, frame=frame, known=known, not_read_invalid=db.loc[~valid, key].astype(object),
                      new_keys=len(new_keys), latest_ledger=stats.latest_ledger, requests=stats.requests,
                      failed_batches=stats.failed_batches)


@dataclass(frozen=True)
class _ChunkTask:
    """One piece of a sweep: stored rows [first, end) (none past the last row) and the chain-only
    keys of its key range."""

    rows: tuple[int, int] | None
    chain_only: np.ndarray


def _tasks(stored: StoredRows, chain_only: np.ndarray, rows_per_task: int) -> list[_ChunkTask]:
    """Each slice of the stored rows with the chain-only keys up to its last key (and after the
    previous slice's), then the chain-only keys beyond the last row, `rows_per_task` at a time."""
    slices = stored.slices(rows_per_task)
    ends = np.searchsorted(chain_only, np.array([last for *_, last in slices], dtype=np.uint64), side="right")
    starts = np.concatenate([[0], ends[:-1]]).astype(np.intp) if len(ends) else ends
    tasks = [_ChunkTask((first, end), chain_only[start:stop])
             for (first, end, _), start, stop in zip(slices, starts, ends, strict=True)]
    after = int(ends[-1]) if len(ends) else 0
    tasks += [_ChunkTask(None, chain_only[offset:offset + rows_per_task])
              for offset in range(after, len(chain_only), rows_per_task)]
    return tasks


def rows_per_task(chunk_rows: int, workers: int, batch_size: int) -> int:
    """Rows each worker diffs at a time: a chunk shared among the workers, so that memory holds
    about one chunk whatever their number; whole request batches where a share holds one."""
    share = -(-chunk_rows // workers)
    return share if share < batch_size else share // batch_size * batch_size


class SweepWorkerDied(RuntimeError):
    """A worker process of a streaming sweep ended without handing back its chunk."""


@dataclass(frozen=True)
class _SweepState:
    """What diffing a chunk needs: the same for every chunk, shared with the workers."""

    ctx: StepContext
    entity: Entity
    stored: StoredRows
    contract_id: str | None
    tolerances: Any
    incident_keys: np.ndarray
    source_named: np.ndarray
    """Keys the database side's own findings name (their rows are kept, as the findings' rows are)."""
    folds: dict[str, Any]
    """Aggregate name -> its fold's factory."""


@dataclass(frozen=True)
class _ChunkDiff:
    """What one chunk adds to the sweep; built by a worker, merged by the step."""

    findings: pd.DataFrame
    violations: pd.DataFrame | None
    """The chain side's invariant findings (None: the entity has no chain invariants)."""
    validated: int
    folds: dict[str, Any]
    answered: int
    missing: int
    read_totals: dict[str, int]
    column_schema: Any
    kept_db: pd.DataFrame | None
    """The chunk's rows that a finding names (None: no finding names one)."""
    kept_chain: pd.DataFrame | None
    compared: np.ndarray
    missed: np.ndarray
    not_read: int
    not_read_invalid: pd.Series
    new_keys: int
    latest_ledger: int | None
    rows: int
    process: int
    """The worker's process id."""


def _diff_chunk(state: _SweepState, reader: ChainReader, task: _ChunkTask) -> _ChunkDiff:
    """One chunk read, decoded, validated, diffed and folded."""
    entity, key = state.entity, state.entity.key
    db = state.stored.rows_of(*task.rows) if task.rows is not None else state.stored.empty
    read = _read_chunk(state.ctx, reader, entity, db, task.chain_only, state.contract_id)
    snapshot = ChainSnapshot(entity=entity.name, frame=read.frame, ledger_sequence=read.latest_ledger,
                             requests=read.requests, failed_batches=read.failed_batches,
                             contract_id=state.contract_id, not_read_invalid=read.not_read_invalid)
    diff = diff_entity_keys(entity, read.db, snapshot, state.tolerances, state.ctx.settings.ttl_warning_ledgers)
    found = [diff.findings]
    violations, validated = None, 0
    invariants = entity.chain_invariants
    if invariants is not None:
        checked_rows = invariants.rows(decoded_rows(read.frame))
        validated = len(checked_rows)
        violations = invariant_findings(entity, key, invariants.model, checked_rows, side="chain",
                                        severity=invariants.severity)
        found.append(violations)
    folds = {name: make() for name, make in state.folds.items()}
    for fold in folds.values():
        fold.add(read.db, read.frame)
    answered, missing = _answered_and_missing(read.frame, key, read.known, state.incident_keys)
    metadata = read_metadata(snapshot)
    named = np.union1d(state.source_named, _uint64_keys(pd.concat([f["entity_key"] for f in found])))
    kept_db = read.db[np.isin(_as_uint64(read.db[key]), named)] if len(named) else None
    kept_chain = read.frame[np.isin(_as_uint64(read.frame[key]), named)] if len(named) else None
    return _ChunkDiff(
        findings=diff.findings, violations=violations, validated=validated, folds=folds, answered=answered,
        missing=missing, read_totals={name: int(metadata[name]) for name in SUMMED_READ_METADATA},
        column_schema=metadata["dagster/column_schema"], kept_db=kept_db, kept_chain=kept_chain,
        compared=_uint64_keys(diff.compared_keys), missed=_uint64_keys(diff.missed_keys), not_read=diff.not_read,
        not_read_invalid=read.not_read_invalid, new_keys=read.new_keys, latest_ledger=read.latest_ledger,
        rows=len(read.db), process=os.getpid())


def sweep_workers(setting: int, max_in_flight: int, chunks: int) -> int:
    """Processes a sweep of `chunks` chunks runs in: the setting (0: one per usable core), never more
    than requests may be in flight, and none (1: the run's process) for a one-chunk sweep, where
    processes cannot be forked, or in a daemon process (which may not have children)."""
    if chunks < 2 or "fork" not in mp.get_all_start_methods() or mp.current_process().daemon:
        return 1
    return max(1, min(setting or _usable_cores(), max_in_flight))


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, narrower than the machine's in a
    pinned container; a CPU quota is not visible here: RECON_SWEEP_WORKERS sets it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_WORKER: tuple[_SweepState, ChainReader] | None = None
"""A worker process's sweep and its reader, set once when the process starts."""


def _start_worker(state: _SweepState, request_slots: Any) -> None:
    global _WORKER
    readers = ExitStack()
    reader = readers.enter_context(state.ctx.reader(request_slots))
    # Closed as the worker process exits (multiprocessing runs these finalizers, not atexit's).
    mp_util.Finalize(reader, readers.close, exitpriority=10)
    _WORKER = (state, reader)


def _diff_in_worker(task: _ChunkTask) -> _ChunkDiff:
    assert _WORKER is not None, "a sweep worker runs chunks only after _start_worker"
    state, reader = _WORKER
    return _diff_chunk(state, reader, task)


@contextmanager
def _chunk_diffs(state: _SweepState, tasks: list[_ChunkTask], workers: int,
                 in_flight: int) -> Iterator[Iterator[_ChunkDiff]]:
    """Each task's chunk diff, in task order, computed `workers` processes at a time (or, with one,
    in two threads of this process, so one chunk is read while another is diffed).

    Every worker's reader holds one of `RPC_MAX_IN_FLIGHT` shared request slots around each
    request, so the run's requests in flight stay within the setting. Workers are forked: they
    share this process's state (its context, the spec, the stored file's path) without pickling,
    and only tasks and chunk diffs cross between processes.
    """
    exits = ExitStack()
    executor: Executor
    submit: Callable[[_ChunkTask], Future[_ChunkDiff]]
    if workers == 1:
        reader = exits.enter_context(state.ctx.reader(threading.BoundedSemaphore(in_flight)))
        executor = exits.enter_context(ThreadPoolExecutor(max_workers=2, thread_name_prefix="sweep-chunk"))
        submit, window = functools.partial(executor.submit, _diff_chunk, state, reader), 2
    else:
        fork = mp.get_context("fork")
        executor = exits.enter_context(ProcessPoolExecutor(
            max_workers=workers, mp_context=fork, initializer=_start_worker,
            initargs=(state, fork.BoundedSemaphore(in_flight))))
        submit, window = functools.partial(executor.submit, _diff_in_worker), workers + 1

    def in_order() -> Iterator[_ChunkDiff]:
        pending: collections.deque[Future[_ChunkDiff]] = collections.deque()
        remaining = iter(tasks)
        if workers > 1:
            return_freed_memory()  # before the fork, so no worker counts them
        # A process pool forks its workers on its first submit. The collector is frozen across
        # it: a worker then never collects (and closes) an object its parent owns, nor copies
        # the parent's pages by marking them (a worker's own memory stays its chunks').
        gc.freeze()
        try:
            pending.extend(submit(task) for task in itertools.islice(remaining, window))
        finally:
            gc.unfreeze()
        while pending:
            diff = pending.popleft().result()
            pending.extend(submit(task) for task in itertools.islice(remaining, 1))
            yield diff

    def diffs() -> Iterator[_ChunkDiff]:
        try:
            yield from in_order()
        except BrokenProcessPool as error:  # from a result, or from a submit once the pool knows
            raise SweepWorkerDied(
                "a sweep worker process ended before its chunk was diffed (killed, or out of memory?): "
                "nothing of this sweep is persisted. RECON_SWEEP_WORKERS=1 diffs in the run's process.") from error

    with exits:
        try:
            yield diffs()
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


def return_freed_memory() -> None:
    """Hand the pages the allocators keep after frees (Arrow's pool; glibc's heap, which keeps
    its high-water mark of a step's chunks) back to the system. Called before forking workers:
    pages the parent holds but no longer uses would otherwise count in every process's memory."""
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's; absent on musl
        if trim is not None:
            trim(0)


def _as_uint64(keys: pd.Series) -> np.ndarray:
    """A u64 entity's keys as uint64, aligned with the rows (they are integers whatever the dtype)."""
    return keys.to_numpy(dtype=np.uint64)


def _uint64_keys(keys: pd.Series) -> np.ndarray:
    """The distinct u64 keys among `keys` (text or integers); a key that is not one (a finding about
    no single entry) names no row."""
    try:
        # Vectorized for the common case (every chunk's compared keys): all of them are u64 keys.
        return np.unique(keys.to_numpy(dtype=np.uint64))
    except (TypeError, ValueError, OverflowError):
        return np.unique(np.asarray([int(k) for k in keys if str(k).isdigit()], dtype=np.uint64))


def _answered_and_missing(frame: pd.DataFrame, key: str, known: pd.Series,
                          incident_keys: np.ndarray) -> tuple[int, int]:
    """`steps.answered_and_missing` on u64 keys: of the database's keys (less those with open
    incidents), how many the RPC answered, and how many of those are missing on chain."""
    keys = _as_uint64(frame[key])
    asked = np.isin(keys, _as_uint64(known)) & ~np.isin(keys, incident_keys)
    status = frame["read_status"].to_numpy(dtype=object)
    answered = asked & np.isin(status, np.array(ANSWERED, dtype=object))
    return int(answered.sum()), int((answered & (status == READ_MISSING)).sum())


def streamed_chain_step(ctx: StepContext, spec: DomainSpec, scope: Scope, entity: Entity,
                        inputs: DomainInputs) -> Output:
    """The entity read for every stored row and every chain-only key in key order, each chunk
    decoded, validated, diffed and folded by the sweep's workers, its results merged here."""
    from reconciliation_pipeline.core.steps import Output, _discovered_keys, guard_missing_read, invariants_check

    source = inputs.sources[entity.source_name]
    stored = source.stored
    assert stored is not None
    key, plan = entity.key, inputs.plan
    aggregates = [a for a in folded_aggregates(spec, scope, entity) if a.fold is not None]
    folds = {a.name: a.fold() for a in aggregates}
    contract_id = getattr(ctx.contracts, entity.key_source.contract) if isinstance(entity.key_source, DataKey) else None
    incident_keys = _uint64_keys(pd.Series(plan.incident_keys.get(entity.name, ()) if plan is not None else (),
                                           dtype=object))
    invariants = entity.chain_invariants
    read_started_at = datetime.now(UTC)
    with ctx.reader() as reader:
        discovery = _discovered_keys(ctx, spec, scope, entity, plan, reader)
        in_flight, batch_size = reader.settings.max_in_flight, reader.settings.batch_size
    chain_only = np.setdiff1d(_uint64_keys(discovery.keys), _uint64_keys(pd.Series(source.duplicate_keys)))
    chunk_rows = ctx.settings.sweep_chunk_rows
    chunks_in_sweep = -(-(stored.rows + len(chain_only)) // chunk_rows)
    workers = sweep_workers(ctx.settings.sweep_workers, in_flight, chunks_in_sweep)
    tasks = _tasks(stored, chain_only, rows_per_task(chunk_rows, workers, batch_size) if workers > 1 else chunk_rows)
    state = _SweepState(
        ctx=ctx, entity=entity, stored=stored, contract_id=contract_id,
        tolerances=resolve_tolerances(entity, ctx.settings), incident_keys=incident_keys,
        # The database side's own findings are about rows too (a hook may look them up).
        source_named=_uint64_keys(source.invariant_findings["entity_key"]),
        folds={a.name: a.fold for a in aggregates})

    findings, invariant_parts, kept_db, kept_chain, not_read_invalid = [], [], [], [], []
    compared, missed = BitMap64(), BitMap64()
    totals: dict[str, int] = dict.fromkeys(SUMMED_READ_METADATA, 0)
    column_schema: Any = None
    ledgers: list[int] = []
    processes: set[int] = set()
    answered = missing = not_read = new_keys = validated = chunks = rows_done = 0
    next_report = 0.1
    where = f"{workers} worker processes" if workers > 1 else "this process"
    ctx.log.info(f"chain_{entity.name}: {len(tasks)} chunks of {stored.rows} stored rows and {len(chain_only)} "
                 f"keys known only on chain, diffed in {where}")
    with _chunk_diffs(state, tasks, workers, in_flight) as diffs:
        for part in diffs:
            chunks += 1
            findings.append(part.findings)
            if part.violations is not None:
                invariant_parts.append(part.violations)
            validated += part.validated
            for name, fold in part.folds.items():
                folds[name].merge(fold)
            answered, missing = answered + part.answered, missing + part.missing
            column_schema = column_schema or part.column_schema
            for name in SUMMED_READ_METADATA:
                totals[name] += part.read_totals[name]
            if part.kept_db is not None and part.kept_chain is not None:
                kept_db.append(part.kept_db)
                kept_chain.append(part.kept_chain)
            compared |= key_set(part.compared)
            missed |= key_set(part.missed)
            not_read += part.not_read
            new_keys += part.new_keys
            not_read_invalid.append(part.not_read_invalid)
            if part.latest_ledger is not None:
                ledgers.append(part.latest_ledger)
            processes.add(part.process)
            rows_done += part.rows
            if stored.rows and rows_done / stored.rows >= next_report:
                ctx.log.info(f"chain_{entity.name}: {rows_done}/{stored.rows} rows diffed in {chunks} chunks")
                next_report = rows_done / stored.rows + 0.1
    if chunks == 0:
        with ctx.reader() as reader:
            empty_frame, _ = read_entries(reader, entity, key, entity.kind, pd.Series([], dtype=object),
                                          pd.Series([], dtype=object))
        kept_chain.append(empty_frame)
    latest = max(ledgers, default=None)
    guard_missing_read(ctx, spec, scope, entity, answered, missing, contract_id, latest)
    template = (kept_chain or [pd.DataFrame()])[0].iloc[0:0]
    chain_frame = pd.concat(kept_chain, ignore_index=True) if kept_chain else template
    prefix = entity.entity_id_prefix or ""
    checked = replace(Checked.none(), unchecked=len(missed), not_read=not_read,
                      keyed=(KeyedEntities(entity.entity_type, prefix, compared),),
                      keyed_unchecked=(KeyedEntities(entity.entity_type, prefix, missed),))
    invalid = pd.concat(not_read_invalid, ignore_index=True) if not_read_invalid else pd.Series([], dtype=object)
    chain_invariants = concat_findings(invariant_parts)
    result = ChainSnapshot(
        entity=entity.name, frame=chain_frame, ledger_sequence=latest, requests=totals["rpc_requests"],
        failed_batches=totals["failed_batches"], contract_id=contract_id, not_read_invalid=invalid,
        discovered=new_keys, mode=plan.mode if plan is not None else None, invariant_findings=chain_invariants,
        unreadable_events=discovery.unreadable, read_started_at=read_started_at,
        streamed=StreamedDiff(
            source=entity.source_name, findings=concat_findings(findings), checked=checked,
            db_rows=pd.concat(kept_db, ignore_index=True) if kept_db else stored.empty, folds=folds, chunks=chunks),
    )
    checks = (invariants_check(invariants, chain_invariants, validated, "chain"),) if invariants is not None else ()
    metadata = {**totals, "dagster/column_schema": column_schema or frame_metadata(chain_frame)["dagster/column_schema"],
                "ledger_sequence": latest, "sweep_mode": result.mode, "keys_discovered_on_chain": new_keys,
                "streaming_sweep": True, "streamed_chunks": chunks, "sweep_worker_processes": len(processes - {os.getpid()})}
    if discovery.source is not None:
        metadata["discovery_source"] = discovery.source
    ctx.log.info(f"chain_{entity.name}: {totals['dagster/row_count']} entries read in {totals['rpc_requests']} "
                 f"requests at ledger {latest} ({new_keys} known only on chain), diffed in {chunks} chunks")
    return Output(result, metadata, checks)


# -- the discrepancies step -----------------------------------------------------------


def finding_rows(inputs: DomainInputs) -> DomainInputs:
    """The inputs with each streamed source's frame the rows its findings are about, so hooks
    (a holder's wallet, a stream's token) look them up as in a whole-frame run."""
    streamed = {c.streamed.source: c.streamed.db_rows for c in inputs.chains.values() if c.streamed is not None}
    if not streamed:
        return inputs
    sources = {name: replace(snapshot, frame=streamed[name]) if name in streamed else snapshot
               for name, snapshot in inputs.sources.items()}
    return replace(inputs, sources=sources)


def remove_stored(inputs: DomainInputs) -> None:
    """Delete the run's stored snapshots once its findings are persisted."""
    for snapshot in inputs.sources.values():
        if snapshot.stored is not None and snapshot.stored.path is not None:
            Path(snapshot.stored.path).unlink(missing_ok=True)
            directory = Path(snapshot.stored.path).parent
            if directory.exists() and not any(directory.iterdir()):
                shutil.rmtree(directory, ignore_errors=True)
