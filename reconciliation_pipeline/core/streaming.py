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
- `chain_<entity>` reads the file back chunk by chunk. The chain-only keys
  (from events) that fall in a chunk's key range join it, in order; the
  chunk's entries are read 200 per request, decoded, their invariants
  validated, and diffed against the chunk by the same diff as a whole-frame
  run; running aggregates (escrow solvency) fold it. A reader thread fetches
  the next chunks while one is diffed, so the CPU work overlaps the network.
  It hands on the findings, what was checked (by key), the folds, and only the
  rows the findings are about.
- `<name>_discrepancies` persists them as before, in the run's one transaction.

Memory then holds a few chunks, not the fleet. Runs that compare a subset
(increments, shards, a sensor's keys), address-keyed sources, and domains whose
hooks or steps need whole frames keep the whole-frame path.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
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
    data_key_ledger_keys,
    db_chunks,
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

READ_AHEAD_CHUNKS = 2
"""Chunks read ahead of the one being diffed: enough to keep requests in flight while it is."""
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

    def chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The rows as canonical frames (as `snapshot_db` builds them), `chunk_rows` at a time.

        Row groups (one per stored chunk) are read one at a time and each frame copies its values
        out of Arrow's buffers: a reader over the whole file (`iter_batches`) held Arrow buffers
        across chunks in the pipeline, 32 MiB more every few hundred thousand rows (113 MiB of
        Arrow memory at 2M). Frames are cut at `chunk_rows` whatever the row groups' sizes, so a
        chunk is read in as few requests as its rows need."""
        if self.path is None:
            return
        parquet = pq.ParquetFile(self.path)
        try:
            pending: pa.Table | None = None
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group)
                pending = table if pending is None else pa.concat_tables([pending, table])
                while pending.num_rows >= chunk_rows:
                    yield self._frame(pending.slice(0, chunk_rows))
                    pending = pending.slice(chunk_rows)
            if pending is not None and pending.num_rows:
                yield self._frame(pending)
        finally:
            parquet.close()

    def _frame(self, table: pa.Table) -> pd.DataFrame:
        key, amounts = self.source.key_column, set(self.source.amount_columns)
        columns: dict[str, pd.Series] = {}
        for name, values in zip(table.schema.names, table.columns, strict=True):
            if name == key:
                columns[name] = pd.Series(np.array(values.to_numpy(), dtype=np.uint64))  # a copy, not a view
            elif name in amounts:
                columns[name] = to_exact_ints(pd.Series(values.to_numpy(zero_copy_only=False), dtype=object))
            elif pa.types.is_timestamp(values.type):
                # A datetime64 column, not one datetime object per value as to_pylist builds
                # them: nothing compares these (they scope the rows and date the findings).
                columns[name] = values.to_pandas().copy(deep=True)
            elif pa.types.is_string(values.type):
                columns[name] = pd.Series(values.to_numpy(zero_copy_only=False), dtype=object)
            else:
                columns[name] = pd.Series(values.to_pylist(), dtype=object)
        return pd.DataFrame(columns)[list(self.empty.columns)]


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
            # Text: an i128 needs 39 digits, beyond any Parquet decimal of 38.
            return pa.array([None if v is None else str(v) for v in values], pa.string())
        wanted = self.schema.field(name).type if self.schema is not None else None
        array = pa.array(values.tolist(), type=wanted)
        return array.cast(pa.string()) if wanted is None and pa.types.is_null(array.type) else array

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.table({name: self._array(name, frame[name]) for name in frame.columns})
        if self.writer is None:
            self.schema = table.schema
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.schema))
        self.rows += len(frame)

    def close(self) -> str | None:
        if self.writer is None:
            return None
        self.writer.close()
        return str(self.path)


def _whole_keys(chunks: Iterator[pd.DataFrame], key: str) -> Iterator[pd.DataFrame]:
    """The chunks re-cut so that no key spans two (rows sharing a key are one duplicate finding):
    each chunk's rows of its last key wait for the next. Keys must come in order."""
    carry: pd.DataFrame | None = None
    last: int | None = None
    for chunk in chunks:
        if chunk.empty:
            continue
        keys = chunk[key].to_numpy()
        if np.any(keys[1:] < keys[:-1]) or (last is not None and keys[0] < last):
            raise ValueError(f"the snapshot's rows are not in {key} order: a streaming sweep needs them sorted")
        last = int(keys[-1])
        if carry is not None:
            chunk = pd.concat([carry, chunk], ignore_index=True)
        tail = (chunk[key] == last).to_numpy()
        carry = chunk[tail].reset_index(drop=True)
        if not tail.all():
            yield chunk[~tail].reset_index(drop=True)
    if carry is not None:
        yield carry


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
    with db_chunks(ctx.engine, source, row_filter, chunk_rows=ctx.settings.sweep_chunk_rows) as snapshot:
        empty = empty_db_frame(source, snapshot.columns)
        for chunk in _whole_keys(snapshot.chunks, source.key_column):
            part = _without_duplicate_keys(DbSnapshot(source.name, chunk, taken_at, ""), source)
            duplicates += part.duplicate_keys
            duplicate_found.append(part.invariant_findings)
            if source.invariants is not None:
                rows = source.invariants.rows(part.frame)
                validated += len(rows)
                invariant_found.append(invariant_findings(source, source.key_column, source.invariants.model, rows,
                                                side="database", severity=source.invariants.severity))
            if len(part.frame):
                writer.write(part.frame)
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
        "streaming_sweep": True,
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


class _ReadAhead:
    """Runs a generator in a thread, at most `depth` items ahead of the consumer."""

    _DONE = object()

    def __init__(self, items: Iterator[Any], depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="sweep-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Iterator[Any]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(error)
        self._put(self._DONE)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


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


def _ranges(stored: StoredRows, chain_only: np.ndarray, chunk_rows: int) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Each database chunk with the chain-only keys up to its last key (and after the previous
    chunk's), then the chain-only keys beyond the last row, `chunk_rows` at a time."""
    start = 0
    for db in stored.chunks(chunk_rows):
        end = int(np.searchsorted(chain_only, np.uint64(db[stored.source.key_column].iloc[-1]), side="right"))
        yield db, chain_only[start:end]
        start = end
    for offset in range(start, len(chain_only), chunk_rows):
        yield stored.empty, chain_only[offset:offset + chunk_rows]


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
    decoded, validated, diffed and folded as it arrives."""
    from reconciliation_pipeline.core.steps import Output, _discovered_keys, guard_missing_read, invariants_check

    source = inputs.sources[entity.source_name]
    stored = source.stored
    assert stored is not None
    key, plan = entity.key, inputs.plan
    chunk_rows = ctx.settings.sweep_chunk_rows
    tolerances = resolve_tolerances(entity, ctx.settings)
    folds = {a.name: a.fold() for a in folded_aggregates(spec, scope, entity) if a.fold is not None}
    contract_id = getattr(ctx.contracts, entity.key_source.contract) if isinstance(entity.key_source, DataKey) else None
    incident_keys = _uint64_keys(pd.Series(plan.incident_keys.get(entity.name, ()) if plan is not None else (),
                                           dtype=object))
    invariants = entity.chain_invariants
    # The database side's own findings are about rows too (a hook may look them up).
    source_named = _uint64_keys(source.invariant_findings["entity_key"])

    findings, invariant_parts, kept_db, kept_chain, not_read_invalid = [], [], [], [], []
    compared, missed = BitMap64(), BitMap64()
    totals: dict[str, int] = dict.fromkeys(SUMMED_READ_METADATA, 0)
    column_schema: Any = None
    ledgers: list[int] = []
    answered = missing = not_read = new_keys = validated = chunks = rows_done = 0
    next_report = 0.1
    read_started_at = datetime.now(UTC)
    with ctx.reader() as reader:
        discovery = _discovered_keys(ctx, spec, scope, entity, plan, reader)
        chain_only = np.setdiff1d(_uint64_keys(discovery.keys), _uint64_keys(pd.Series(source.duplicate_keys)))
        reads = _ReadAhead((_read_chunk(ctx, reader, entity, db, keys, contract_id)
                            for db, keys in _ranges(stored, chain_only, chunk_rows)), READ_AHEAD_CHUNKS)
        try:
            for read in reads:
                chunks += 1
                snapshot = ChainSnapshot(entity=entity.name, frame=read.frame, ledger_sequence=read.latest_ledger,
                                         requests=read.requests, failed_batches=read.failed_batches,
                                         contract_id=contract_id, not_read_invalid=read.not_read_invalid)
                diff = diff_entity_keys(entity, read.db, snapshot, tolerances, ctx.settings.ttl_warning_ledgers)
                found = [diff.findings]
                if invariants is not None:
                    checked_rows = invariants.rows(decoded_rows(read.frame))
                    validated += len(checked_rows)
                    violations = invariant_findings(entity, key, invariants.model, checked_rows, side="chain",
                                                    severity=invariants.severity)
                    invariant_parts.append(violations)
                    found.append(violations)
                for fold in folds.values():
                    fold.add(read.db, read.frame)
                chunk_answered, chunk_missing = _answered_and_missing(read.frame, key, read.known, incident_keys)
                answered, missing = answered + chunk_answered, missing + chunk_missing
                metadata = read_metadata(snapshot)
                column_schema = column_schema or metadata["dagster/column_schema"]
                for name in SUMMED_READ_METADATA:
                    totals[name] += int(metadata[name])
                named = np.union1d(source_named, _uint64_keys(pd.concat([f["entity_key"] for f in found])))
                if len(named):
                    kept_db.append(read.db[np.isin(_as_uint64(read.db[key]), named)])
                    kept_chain.append(read.frame[np.isin(_as_uint64(read.frame[key]), named)])
                findings.append(diff.findings)
                compared |= key_set(_uint64_keys(diff.compared_keys))
                missed |= key_set(_uint64_keys(diff.missed_keys))
                not_read += diff.not_read
                new_keys += read.new_keys
                not_read_invalid.append(read.not_read_invalid)
                if read.latest_ledger is not None:
                    ledgers.append(read.latest_ledger)
                rows_done += len(read.db)
                if stored.rows and rows_done / stored.rows >= next_report:
                    ctx.log.info(f"chain_{entity.name}: {rows_done}/{stored.rows} rows diffed in {chunks} chunks")
                    next_report = rows_done / stored.rows + 0.1
        finally:
            reads.close()
        if chunks == 0:
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
                "streaming_sweep": True, "streamed_chunks": chunks}
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
