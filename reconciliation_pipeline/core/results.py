"""What the steps of a reconciliation hand each other: small typed results.

Every value an asset passes downstream is one of these dataclasses; nothing
travels as frame metadata or in tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import dagster as dg
import numpy as np
import pandas as pd
from pyroaring import BitMap64
from sqlalchemy.engine import Engine

from reconciliation_pipeline.core.findings import empty_findings

if TYPE_CHECKING:
    from reconciliation_pipeline.chain.reader import ChainReader
    from reconciliation_pipeline.core.drift_store import RunInfo
    from reconciliation_pipeline.core.repairs import RepairOutcome
    from reconciliation_pipeline.core.run_budget import RunBudget
    from reconciliation_pipeline.core.scopes import Shard
    from reconciliation_pipeline.core.streaming import StoredRows, StreamedDiff
    from reconciliation_pipeline.core.watermarks import SweepPlan
    from reconciliation_pipeline.resources import ReconSettings, StellarContractsResource


@dataclass(frozen=True)
class DbSnapshot:
    """One source's rows as the database held them when `taken_at`."""

    source: str
    frame: pd.DataFrame
    taken_at: datetime
    scope: str
    """Which rows: every row, a day's window, one shard, what changed since the watermark."""
    only_keys: tuple[str, ...] | None = None
    """The run was restricted to these keys (a sensor's run): it never replaces a partition."""
    counts: Mapping[str, int] = field(default_factory=dict)
    invariant_findings: pd.DataFrame = field(default_factory=empty_findings)
    """The source's invariants, validated once when the snapshot was taken."""
    duplicate_keys: tuple[str, ...] = ()
    """Keys several rows share: their rows are not in `frame` (which one is right is unknown), so
    they are neither read, compared, repaired nor counted checked; each has its own finding."""
    ledger_at_snapshot: int | None = None
    """The chain's latest ledger when the snapshot was taken: an entry modified after it may be a
    write in flight (None when the RPC could not say)."""
    stored: StoredRows | None = None
    """A streaming full sweep: the rows are in this key-ordered columnar file, not in `frame`
    (which then holds no rows, only the columns); `core.streaming` reads them chunk by chunk."""
    rows: int | None = None
    """How many rows the snapshot holds, where `frame` does not hold them all."""

    @property
    def row_count(self) -> int:
        return len(self.frame) if self.rows is None else self.rows


@dataclass(frozen=True)
class ChainSnapshot:
    """One entity's entries as the chain held them at `ledger_sequence`, a row per key read.

    `frame` has the entity's key column, its decoded columns and the read's
    columns (`read_status`, `read_error`, `raw_xdr`, `ledger_key`,
    `last_modified_ledger`, `live_until_ledger`, `ledger_sequence`).
    """

    entity: str
    frame: pd.DataFrame
    ledger_sequence: int | None
    requests: int
    failed_batches: int
    contract_id: str | None = None
    """The contract a `DataKey` entity was read on (ledger keys are rebuilt from it)."""
    not_read_invalid: pd.Series = field(default_factory=lambda: pd.Series([], dtype=object))
    """Database keys never read because the address their ledger key needs is invalid."""
    discovered: int = 0
    """Keys only the chain knew of (from events or an index)."""
    mode: str | None = None
    """For an incremental scope: `incremental` or `full`."""
    invariant_findings: pd.DataFrame = field(default_factory=empty_findings)
    """The chain side's invariants on the decoded entries, validated once when read."""
    unreadable_events: tuple[str, ...] = ()
    """Ids of events whose key could not be read while discovering chain-only keys."""
    skipped: str | None = None
    """Why nothing was read (the run compares nothing), or None."""
    read_started_at: datetime | None = None
    """When the read began: a row written after it may be a write in flight."""
    streamed: StreamedDiff | None = None
    """A streaming full sweep: the entity was diffed chunk by chunk as it was read; `frame` then
    holds only the entries the findings are about, and this holds the findings and what was checked."""


@dataclass(frozen=True)
class RowKeys:
    """Ledger keys built per row, aligned with the rows; `absent` is what a key absent on
    chain means (None: missing; a value: that value, e.g. a contract holding 0 USDC)."""

    keys: pd.Series
    absent: pd.Series | None = None
    context: pd.DataFrame | None = None
    """Columns kept beside the read (e.g. the holder kind)."""


def _no_entities() -> pd.DataFrame:
    return pd.DataFrame({"entity_type": pd.Series(dtype=object), "entity_id": pd.Series(dtype=object)})


U64_LIMIT = 2**64


def key_set(keys: np.ndarray) -> BitMap64:
    """Sorted distinct uint64 keys as a compressed bitmap, added run by run: keys from a counter
    (stream ids, user ids) are a few runs, each a few bytes whatever its length."""
    bitmap = BitMap64()
    if len(keys):
        breaks = np.flatnonzero(np.diff(keys) != 1) + 1
        starts = keys[np.concatenate(([0], breaks))].tolist()
        ends = keys[np.concatenate((breaks - 1, [len(keys) - 1]))].tolist()
        for start, end in zip(starts, ends, strict=True):
            bitmap.add_range(start, end)  # [start, end): end + 1 would overflow at the largest u64
            bitmap.add(end)
    return bitmap


@dataclass(frozen=True)
class KeyedEntities:
    """Entities of one type named by their u64 keys (`entity_id = prefix + key`), held as a Roaring
    bitmap: a sweep's million compared stream ids are a few kilobytes, not a million strings (or
    8 MB of keys), so what a sweep hands on does not grow with the fleet."""

    entity_type: str
    prefix: str
    keys: BitMap64

    def entity_ids(self) -> Iterator[str]:
        prefix = self.prefix
        return (prefix + str(key) for key in self.keys)

    def key_array(self) -> np.ndarray:
        """The keys in order, as uint64."""
        return np.frombuffer(self.keys.to_array(), dtype=np.uint64)

    def ids_among(self, entity_ids: Iterable[str]) -> list[str]:
        """Those of `entity_ids` (of this entity type) that name one of these entities."""
        prefix, keys = self.prefix, self.keys
        hits = []
        for entity_id in entity_ids:
            digits = entity_id[len(prefix):] if entity_id.startswith(prefix) else ""
            key = int(digits) if digits.isascii() and digits.isdigit() else None
            # Only the id this key is written as ("7", not "007") names its entity.
            if key is not None and key < U64_LIMIT and str(key) == digits and key in keys:
                hits.append(entity_id)
        return hits


@dataclass(frozen=True)
class Checked:
    """Which entities a step compared (their incidents may resolve) and how many it could not."""

    entities: pd.DataFrame
    """(entity_type, entity_id)."""
    unchecked: int = 0
    not_read: int = 0
    """Of `unchecked`: left unread at the run's time limit."""
    unchecked_entities: pd.DataFrame = field(default_factory=_no_entities)
    """(entity_type, entity_id) of the unchecked entities where the step knows them (coverage counts
    them as known but not checked)."""
    keyed: tuple[KeyedEntities, ...] = ()
    """Compared entities held by key (a streaming sweep), beside `entities`; never the same entity
    as a row of `entities`."""
    keyed_unchecked: tuple[KeyedEntities, ...] = ()
    """Known but not compared entities held by key, beside `unchecked_entities`."""

    @property
    def count(self) -> int:
        """How many entities were compared."""
        return len(self.entities) + sum(len(k.keys) for k in self.keyed)

    def compared_among(self, pairs: Iterable[tuple[str, str]]) -> pd.DataFrame:
        """The compared entities that are among `pairs` of (entity_type, entity_id)."""
        wanted = set(pairs)
        frame = self.entities
        if not wanted:
            return frame.iloc[0:0]
        index = pd.MultiIndex.from_arrays([frame["entity_type"].astype(str), frame["entity_id"].astype(str)])
        found = [frame[index.isin(list(wanted))]]
        for part in self.keyed:
            hits = part.ids_among(entity_id for entity_type, entity_id in wanted if entity_type == part.entity_type)
            found.append(pd.DataFrame({"entity_type": pd.Series([part.entity_type] * len(hits), dtype=object),
                                       "entity_id": pd.Series(hits, dtype=object)}))
        found = [f for f in found if len(f)]
        return pd.concat(found, ignore_index=True) if found else frame.iloc[0:0]

    def known_by_id(self) -> Iterator[tuple[str, str, bool]]:
        """(entity_type, entity_id, compared) of every entity the step knew of by id (not by key:
        `known_by_key`), each once; one compared by one part and missed by another was compared."""
        compared = self.entities.assign(checked=True)
        missed = self.unchecked_entities.assign(checked=False)
        frames = pd.concat([frame for frame in (compared, missed) if len(frame)] or [compared], ignore_index=True)
        frames = frames.drop_duplicates(["entity_type", "entity_id"], keep="first")
        yield from zip(frames["entity_type"].astype(str), frames["entity_id"].astype(str),
                       frames["checked"].astype(bool), strict=True)

    def known_by_key(self) -> Iterator[tuple[KeyedEntities, bool]]:
        """Each part of the entities the step knew of by key, and whether they were compared."""
        yield from ((part, True) for part in self.keyed)
        yield from ((part, False) for part in self.keyed_unchecked)

    @classmethod
    def none(cls) -> Checked:
        return cls(_no_entities())

    @classmethod
    def of(cls, entity_type: str, entity_ids: pd.Series, unchecked: int = 0, not_read: int = 0,
           unchecked_ids: pd.Series | None = None) -> Checked:
        missed = (pd.DataFrame({"entity_type": entity_type, "entity_id": unchecked_ids.astype(object).to_numpy()})
                  if unchecked_ids is not None and len(unchecked_ids) else _no_entities())
        return cls(pd.DataFrame({"entity_type": entity_type, "entity_id": entity_ids.astype(object).to_numpy()}),
                   unchecked, not_read, missed)

    @classmethod
    def combine(cls, parts: list[Checked]) -> Checked:
        def union(frames: list[pd.DataFrame]) -> pd.DataFrame:
            frames = [f for f in frames if len(f)]
            return pd.concat(frames, ignore_index=True).drop_duplicates().reset_index(drop=True) if frames \
                else _no_entities()

        return cls(union([p.entities for p in parts]), sum(p.unchecked for p in parts),
                   sum(p.not_read for p in parts), union([p.unchecked_entities for p in parts]),
                   tuple(k for p in parts for k in p.keyed), tuple(k for p in parts for k in p.keyed_unchecked))


@dataclass(frozen=True)
class ExtraFindings:
    """A hook's findings and the entities they settle."""

    findings: pd.DataFrame = field(default_factory=empty_findings)
    checked: Checked = field(default_factory=Checked.none)
    ledger_sequence: int | None = None


@dataclass(frozen=True)
class AggregateResult:
    """A cross-entity check's frame (e.g. solvency per token) and its findings."""

    name: str
    frame: pd.DataFrame
    findings: pd.DataFrame
    checked: Checked
    ledger_sequence: int | None = None
    db_snapshot_at: datetime | None = None


@dataclass(frozen=True)
class StepResult:
    """A domain step's output: its value (handed to the steps that name it) and what it reports."""

    value: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)
    checks: tuple[dg.AssetCheckResult, ...] = ()


@dataclass(frozen=True)
class DomainDiff:
    """Everything one run of a domain found, and what it compared."""

    findings: pd.DataFrame
    checked: Checked
    ledger_sequence: int | None
    db_snapshot_at: datetime | None
    repair_plan: pd.DataFrame
    skipped: str | None = None
    """Why nothing was compared (a past-day streaks backfill), or None."""


@dataclass(frozen=True)
class RepairsDone:
    plan: pd.DataFrame
    outcome: RepairOutcome


@dataclass
class DomainInputs:
    """The results a step receives from the steps before it, by role."""

    sources: dict[str, DbSnapshot] = field(default_factory=dict)
    chains: dict[str, ChainSnapshot] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)
    aggregates: dict[str, AggregateResult] = field(default_factory=dict)
    plan: SweepPlan | None = None
    diff: DomainDiff | None = None

    def fold(self, entity: str, aggregate: str) -> Any:
        """The running aggregate a streaming sweep of `entity` folded for `aggregate`, or None."""
        chain = self.chains.get(entity)
        if chain is None or chain.streamed is None:
            return None
        return chain.streamed.folds.get(aggregate)

    def rows_of(self, name: str) -> pd.DataFrame:
        """The rows of a source or of a step whose value holds a frame."""
        if name in self.sources:
            return self.sources[name].frame
        value = self.steps[name]
        return value.frame if hasattr(value, "frame") else value


@dataclass(frozen=True)
class StepContext:
    """What a step may use: the run, its resources and its settings. No step reads Dagster directly."""

    run: RunInfo
    engine: Engine
    contracts: StellarContractsResource
    settings: ReconSettings
    log: Any
    budget: RunBudget
    open_reader: Callable[..., Any]
    """A context manager giving a `ChainReader` bounded by the run's budget (given `request_slots`,
    a semaphore it holds around each getLedgerEntries request)."""
    partition_window: dg.TimeWindow | None
    """The run's time window (a range of days for a range backfill)."""
    partition_keys: tuple[str, ...]
    shard: Shard | None
    tags: Mapping[str, str]
    config: Any = None
    resources: Mapping[str, Any] = field(default_factory=dict)
    progress_label: str = ""

    @contextmanager
    def reader(self, request_slots: AbstractContextManager[Any] | None = None) -> Iterator[ChainReader]:
        with self.open_reader(request_slots) as reader:
            yield reader

    @property
    def window_end(self) -> datetime | None:
        return self.partition_window.end if self.partition_window is not None else None
