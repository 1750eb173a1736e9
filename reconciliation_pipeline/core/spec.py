"""A reconciliation declared as data.

A domain is a `DomainSpec`: the database snapshots it takes (`Source`: one SQL
file each), the chain entities it compares with them (`Entity`: how each row's
ledger key is built, how the entry decodes, which fields are compared and how,
the invariants, the authoritative side, the repairable fields), how chain-only
keys are discovered, the scopes it runs in (`Scope`: a partition window, what
changed since a watermark, one shard of N) with their cadence and jobs, and the
hooks for what is truly domain-specific. `core.factory` turns a spec into the
domain's Dagster definitions; nothing else wires assets by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np
import pandas as pd
import pandera.pandas as pa

from reconciliation_pipeline.chain.decode import DecodedBatch
from reconciliation_pipeline.chain.layouts import StructLayout
from reconciliation_pipeline.chain.templates import StructTemplates
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.money import MoneyField, TokenColumn
from reconciliation_pipeline.core.sql import PIPELINE_SQL, SqlFolder

if TYPE_CHECKING:
    from reconciliation_pipeline.core.results import DomainInputs, ExtraFindings, RowKeys, StepContext, StepResult
    from reconciliation_pipeline.resources import StellarContractsResource

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def identifier(name: str, what: str) -> str:
    """A lower-case SQL/asset identifier; anything else is refused (names reach SQL and asset keys)."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{what} must be a lower-case identifier, got {name!r}")
    return name


class Authority(StrEnum):
    """The side that is right when the two disagree; repairs change the other one."""

    CHAIN = "chain"
    DATABASE = "database"


class Comparison(StrEnum):
    AMOUNT = "amount"  # exact integers in base units; a tolerance in base units
    EXACT = "exact"  # statuses, flags, identifiers
    ADDRESS = "address"  # exact, but an invalid database address is INVALID_ADDRESS instead


class KeyKind(StrEnum):
    """The canonical type of an entity key: both sides' keys are normalised to it."""

    U64 = "u64"
    ADDRESS = "address"

    def normalize(self, keys: pd.Series) -> pd.Series:
        if self is KeyKind.U64:
            try:
                # Vectorized for keys that are already u64 integers (a snapshot's million ids):
                # 13 ms per million, against 260 ms for one int() call per key.
                return pd.Series(keys.to_numpy(dtype=np.uint64), index=keys.index)
            except (OverflowError, TypeError, ValueError):
                return keys.map(int).astype("uint64")
        return keys.astype(object)


@dataclass(frozen=True)
class Setting:
    """A value taken from the settings resource when a run starts (e.g. a configured tolerance)."""

    name: str


@dataclass(frozen=True)
class ComparedField:
    name: str
    comparison: Comparison
    drift_class: DriftClass = DriftClass.VALUE_MISMATCH
    severity: Severity = Severity.WARN
    tolerance: int | Setting = 0
    """Base units; a `Setting` names the settings field that holds it."""
    repair_query: str | None = None
    """Path (in the domain's SQL folder) of the compare-and-swap UPDATE that repairs this field."""

    def __post_init__(self) -> None:
        if isinstance(self.tolerance, int) and (self.tolerance < 0 or isinstance(self.tolerance, bool)):
            raise ValueError(f"{self.name}: tolerance must be a non-negative integer in base units")


@dataclass(frozen=True)
class Invariants:
    """A pandera model validated on one side, and the asset check that reports it."""

    model: type[pa.DataFrameModel]
    check: str
    description: str
    severity: Severity
    applies_to: Callable[[pd.DataFrame], pd.Series] | None = None
    """A mask of the rows the model describes (e.g. only rows that store a projection); None: all."""

    def rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame if self.applies_to is None or frame.empty else frame[self.applies_to(frame).astype(bool)]


@dataclass(frozen=True)
class Source:
    """One database snapshot: a canonical query and what its rows are.

    The query returns canonical columns and no ORDER BY; scope filters (the
    partition window, changed since a watermark, one shard) are applied by the
    core around it (`core.scopes`), so each entity has exactly one query. It
    returns `created_at` where a scope bounds it by a window and `updated_at`
    where a scope reads what changed.
    """

    name: str
    query: str
    key_column: str
    key_kind: KeyKind
    entity_type: str
    """The identity of findings about the rows themselves (their invariants)."""
    description: str
    entity_id_prefix: str = ""
    amount_columns: tuple[str, ...] = ()
    """Columns the query returns as text that become exact ints."""
    invariants: Invariants | None = None
    counts: Mapping[str, str] = field(default_factory=dict)
    """Metadata name -> query returning one number (e.g. users without a wallet)."""
    windowed: bool = True
    """False for a table that keeps no creation time: every row is compared, whatever the window."""
    sql: SqlFolder = PIPELINE_SQL

    def __post_init__(self) -> None:
        identifier(self.name, "a source name")
        identifier(self.key_column, "a key column")

    def entity_ids(self, keys: pd.Series) -> pd.Series:
        return self.entity_id_prefix + keys.astype(str)


@dataclass(frozen=True)
class DataKey:
    """The entity's entry is `Variant(key)` on one contract (`Stream(u64)`, `Position(Address)`)."""

    variant: str
    contract: str
    """The contracts resource field holding the contract id, e.g. `stream_contract_id`."""


@dataclass(frozen=True)
class InstanceOf:
    """The entity's entry is the instance storage of the contract named in a database column."""

    column: str


@dataclass(frozen=True)
class PerRow:
    """Each row's ledger key is built from the row (a trustline or a SAC balance by holder kind)."""

    column: str
    """The address column the key is built from; rows whose address is invalid are not read."""
    build: Callable[[pd.DataFrame, StellarContractsResource], RowKeys]


KeySource = DataKey | InstanceOf | PerRow


@dataclass(frozen=True)
class Layout:
    """How an entry decodes: base64 `LedgerEntryData` -> canonical columns (raises `DecodeError`)."""

    decode: Callable[[str], dict[str, Any]]
    columns: tuple[str, ...]
    decode_many: Callable[[Sequence[str], Sequence[str]], DecodedBatch] | None = None
    """Decodes a batch of aligned ledger keys and entries at once, column by column, each entry to
    its values or its error text exactly as `decode` and the key check one by one would
    (`chain.templates`); None: one by one."""

    @classmethod
    def of(cls, value: Any) -> Layout:
        """A layout declared as data (`chain.layouts.StructLayout` / `ScalarLayout`); a struct's
        entries decode a batch at a time by byte templates."""
        many = StructTemplates(value).decode_many if isinstance(value, StructLayout) else None
        return cls(decode=value.decode, columns=value.columns, decode_many=many)


@dataclass(frozen=True)
class EventKeys:
    """Chain-only keys: the u64 or address that contract events name in topic `segment`.

    Contract storage cannot be enumerated; events in the RPC's retention window
    are the only way to learn of entries the database never heard of.
    """

    contract: str
    topics: tuple[str, ...]
    segment: int = 1


@dataclass(frozen=True)
class IndexedKeys:
    """Chain-only keys from an index a domain step keeps (e.g. lending events), bounded by the
    partition's end: the query binds `:window_end` and returns one column `key`."""

    query: str
    after: str
    """The step that fills the index (it runs first)."""


Discovery = EventKeys | IndexedKeys


@dataclass(frozen=True)
class Missing:
    """What a key absent on chain is reported as."""

    field: str = "*"
    reason: str | None = None


@dataclass(frozen=True)
class Entity:
    """One kind of chain entry compared with database rows."""

    name: str
    """Asset names: `chain_<name>`."""
    entity_type: str
    source: Source | str
    """The `Source` whose rows this entity compares, or the name of a domain step that gives them
    (then `key_column`, `key_kind` and `entity_id_prefix` are given here)."""
    key_source: KeySource
    layout: Layout
    compared: tuple[ComparedField, ...]
    authority: Authority
    description: str
    entity_id_prefix: str | None = None
    """Defaults to the source's."""
    key_column: str | None = None
    """Defaults to the source's."""
    key_kind: KeyKind | None = None
    """Defaults to the source's."""
    address_columns: tuple[str, ...] = ()
    """Database columns holding Stellar addresses; invalid ones are INVALID_ADDRESS."""
    muxed_accounts: bool = False
    """An M... (muxed) address in the address columns is valid: the key builder reads its
    underlying G... account (a USDC holder's trustline), and the finding says so."""
    chain_invariants: Invariants | None = None
    discovery: Discovery | None = None
    missing: Missing = Missing()
    missing_severity: Severity = Severity.WARN
    read_error_severity: Severity = Severity.WARN
    invalid_address_severity: Severity = Severity.WARN
    archived_severity: Severity = Severity.WARN
    """An entry whose TTL ran out: archived until restored (protocol 23)."""

    def __post_init__(self) -> None:
        identifier(self.name, "an entity name")
        if isinstance(self.source, Source):
            # Frozen, but the key's defaults are completed from the source once, here.
            object.__setattr__(self, "key_column", self.key_column or self.source.key_column)
            object.__setattr__(self, "key_kind", self.key_kind or self.source.key_kind)
            if self.entity_id_prefix is None:
                object.__setattr__(self, "entity_id_prefix", self.source.entity_id_prefix)
        elif self.key_column is None or self.key_kind is None:
            raise ValueError(f"{self.name} reads the step {self.source!r}: give its key column and kind")
        unknown = {f.name for f in self.compared} - set(self.layout.columns)
        if unknown:
            raise ValueError(f"{self.name}: compared fields {sorted(unknown)} are not decoded from the chain")
        if self.authority is Authority.DATABASE and any(f.repair_query for f in self.compared):
            raise ValueError(f"{self.name}: database-authoritative entities repair the chain, not SQL rows")

    @property
    def repairable(self) -> dict[str, ComparedField]:
        return {f.name: f for f in self.compared if f.repair_query is not None}

    @property
    def source_name(self) -> str:
        return self.source.name if isinstance(self.source, Source) else self.source

    @property
    def key(self) -> str:
        assert self.key_column is not None
        return self.key_column

    @property
    def kind(self) -> KeyKind:
        assert self.key_kind is not None
        return self.key_kind

    def entity_ids(self, keys: pd.Series) -> pd.Series:
        return (self.entity_id_prefix or "") + keys.astype(str)


class Partitioning(StrEnum):
    NONE = "none"
    DAILY = "daily"
    DAILY_SHARDS = "daily_shards"
    """(UTC day, shard of `SHARD_COUNT`): each its own run."""


class Cadence(StrEnum):
    """Which shared job a scope's assets belong to (`core.cadences`)."""

    NIGHTLY = "nightly"
    """`nightly_reconciliation`, 02:00 UTC for the day that just ended."""
    FREQUENT = "frequent"
    """`markets_balances_reconciliation`, every 5 minutes, in full at 02:30 UTC."""
    OWN = "own"
    """Only the scope's own jobs."""


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    cron: str
    description: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    """A job of one scope's assets (or a part of them)."""

    name: str
    description: str
    schedules: tuple[ScheduleSpec, ...] = ()
    only: tuple[str, ...] | None = None
    """Asset names the job selects; None: every asset of the scope."""
    partitioned_by_day: bool = False
    """For a sharded scope: the job of its per-day assets (aggregates)."""


@dataclass(frozen=True)
class ChangeEvents:
    """Incremental: what contract events since the watermark name, plus rows written since.

    The named values are keys of the entity when `column` is the key column, or
    values of another column (a wallet) matched in the database snapshot.
    """

    contract: str
    topics: tuple[str, ...]
    column: str
    segments: tuple[int, ...] | None = (1,)
    """Topic segments holding the value; None: every address-typed segment after the name."""


@dataclass(frozen=True)
class EntryVersions:
    """Incremental for entries without change events: every entry is read, and one whose
    `last_modified_ledger` is the one recorded when it was last compared is not decoded
    or diffed again (unless its row changed or its entity has an open incident)."""


@dataclass(frozen=True)
class Incremental:
    """An every-few-minutes scope that compares only what can have changed since its watermark."""

    plan_asset: str
    watermark_scope: str
    changes: ChangeEvents | EntryVersions
    description: str


@dataclass(frozen=True)
class Scope:
    """One way a domain runs: which rows it compares, on which partitions, in which jobs."""

    name: str
    group: str
    suffix: str = ""
    """Appended to the generated asset names (`db_streams_shard`)."""
    partitioning: Partitioning = Partitioning.NONE
    window: bool = False
    """The database snapshot holds rows created before the partition's end (a backfill replays its day)."""
    cadence: Cadence = Cadence.OWN
    jobs: tuple[JobSpec, ...] = ()
    incremental: Incremental | None = None
    entities: tuple[str, ...] | None = None
    """Entity names compared in this scope; None: all."""
    steps: tuple[str, ...] | None = None
    """Domain steps that run in this scope; None: all."""
    aggregates: bool = True
    """Cross-entity checks (escrow solvency) run: they need every entity, so not in an increment."""
    repairs: bool = True
    """Whether this scope plans repairs (where its entities or hooks can repair anything)."""
    budget: str = "nightly"
    """`frequent` (RUN_TIME_LIMIT_SECONDS) or `nightly` (NIGHTLY_RUN_TIME_LIMIT_SECONDS)."""
    owners: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        identifier(self.name, "a scope name")
        if self.incremental is not None and self.partitioning is not Partitioning.NONE:
            raise ValueError(f"{self.name}: an incremental scope runs on its watermark, not on partitions")
        if self.window and self.partitioning is Partitioning.NONE:
            raise ValueError(f"{self.name}: a window needs daily partitions")


@dataclass(frozen=True)
class Step:
    """A domain-specific step the factory wires in as an asset, with the core's metadata."""

    name: str
    run: Callable[[StepContext, DomainInputs], StepResult]
    description: str
    inputs: tuple[str, ...] = ()
    """What it reads from the same scope: sources as `db_<name>`, other steps, `discrepancies`."""
    kinds: frozenset[str] = frozenset({"pandas"})
    partitioned: bool = True
    """False: the step is about now (pending transactions), whatever partition the run is for."""
    after: tuple[str, ...] = ()
    """Assets it only runs after (no value passed)."""
    config: type | None = None
    """A `dagster.Config` class of run config the step reads (e.g. a grace period)."""
    pool: str | None = None
    checks: tuple[tuple[str, str], ...] = ()
    """(name, description) of checks the step's result reports."""
    resources: tuple[str, ...] = ()
    """Resource keys beyond the core's (e.g. `streak_oracle`)."""
    post: bool = False
    """Runs after the discrepancies step (it may read `inputs.diff`)."""
    value: bool = True
    """False: the step stores its result elsewhere (a table); later steps only run after it."""


@dataclass(frozen=True)
class Aggregate:
    """A cross-entity check (escrow solvency): needs every entity of its run, so it runs only in
    scopes that compare everything, and per day across the shards of a sharded scope."""

    name: str
    run: Callable[[StepContext, DomainInputs], StepResult]
    """Returns an `AggregateResult` as its value, and the aggregate's check."""
    check: str
    check_description: str
    description: str
    entities: tuple[str, ...]
    label: str
    """Its findings' partition key in a sharded scope: `<day>|<label>`."""
    fold: Callable[[], Fold] | None = None
    """A streaming sweep's running form: a new, empty fold that each chunk of (database rows,
    chain entries) is added to as it is diffed; `run` then reads the fold instead of whole
    frames (`DomainInputs.fold`). None: the domain's full sweeps are not streamed."""


class Fold(Protocol):
    """A cross-entity check as a running aggregate: exact sums per group, added chunk by chunk."""

    def add(self, db_rows: pd.DataFrame, chain_rows: pd.DataFrame) -> None: ...

    def merge(self, other: Self) -> None:
        """Add what another fold of the same aggregate was given (a sweep's workers fold their
        chunks apart; the step merges them)."""
        ...


@dataclass(frozen=True)
class Hooks:
    """What is truly domain-specific, called by the core's steps."""

    findings: Callable[[StepContext, DomainInputs], ExtraFindings] | None = None
    """Findings beyond the entities' generic diff (odds, outcomes, provisional ids)."""
    exclude_chain_keys: Callable[[str, DomainInputs], pd.Series] | None = None
    """Per entity: chain keys another finding already explains (a provisional loan's real id)."""
    decorate: Callable[[pd.DataFrame, DomainInputs], pd.DataFrame] | None = None
    """Adds context to every finding's details (a market's title, a holder's wallet)."""
    repairs: Callable[[StepContext, DomainInputs, pd.DataFrame], pd.DataFrame] | None = None
    """Repair plans beyond the compared fields' (inserts, provisional ids), given the findings."""
    skip_compare: Callable[[StepContext, DomainInputs], str | None] | None = None
    """A reason this run compares nothing (a past-day streaks backfill recomputes only)."""


@dataclass(frozen=True)
class DomainSpec:
    domain: str
    description: str
    sources: tuple[Source, ...]
    entities: tuple[Entity, ...]
    scopes: tuple[Scope, ...]
    findings_asset: str
    """`<findings_asset><scope suffix>_discrepancies`."""
    repairs_asset: str
    """`<repairs_asset><scope suffix>_repairs`."""
    steps: tuple[Step, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()
    hooks: Hooks = Hooks()
    owners: tuple[str, ...] = ()
    sql: SqlFolder = PIPELINE_SQL
    """Where the domain's repair and index queries live."""
    produces: tuple[DriftClass, ...] = ()
    """Drift classes its hooks produce beyond the generic ones (its metadata shows those too)."""
    money: tuple[MoneyField, ...] = ()
    """Which findings are amounts of an asset (`core.money`): they carry the asset, its decimals and
    the exact amount at stake; findings on every other field carry none."""

    def __post_init__(self) -> None:
        identifier(self.domain, "a domain name")
        for money in self.money:
            for entity in (e for e in self.entities if e.entity_type == money.entity_type):
                amounts = {f.name for f in entity.compared if f.comparison is Comparison.AMOUNT}
                if set(money.fields) - amounts:
                    raise ValueError(f"{self.domain}: money fields {sorted(set(money.fields) - amounts)} of "
                                     f"{money.entity_type} are not compared as amounts")
            if isinstance(money.asset, TokenColumn) and money.asset.entity not in {e.name for e in self.entities}:
                raise ValueError(f"{self.domain}: the asset of {money.entity_type} comes from unknown entity "
                                 f"{money.asset.entity!r}")
        names = [s.name for s in self.sources] + [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.domain}: sources and steps need distinct names")
        for entity in self.entities:
            if entity.source_name not in names:
                raise ValueError(f"{self.domain}: entity {entity.name} reads unknown source {entity.source_name!r}")

    def source(self, name: str) -> Source:
        return next(s for s in self.sources if s.name == name)

    def entity(self, name: str) -> Entity:
        return next(e for e in self.entities if e.name == name)

    def entities_of(self, scope: Scope) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if scope.entities is None or e.name in scope.entities)

    def steps_of(self, scope: Scope) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if scope.steps is None or s.name in scope.steps)

    def sources_of(self, scope: Scope) -> tuple[Source, ...]:
        used = {e.source_name for e in self.entities_of(scope)}
        step_inputs = {i.removeprefix("db_") for s in self.steps_of(scope) for i in s.inputs}
        return tuple(s for s in self.sources if s.name in used | step_inputs)
