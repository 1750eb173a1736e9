"""The steps every domain runs, generic over its spec.

In order: plan (incremental scopes: what changed since the watermark), snapshot
each database source, read each entity's entries on chain, run the cross-entity
checks, diff and persist, repair. Each step takes a `StepContext` and the typed
results of the steps before it, and returns an `Output`: its typed value, its
metadata and its check results. `core.factory` wires them as Dagster assets;
nothing here touches Dagster's execution context.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from reconciliation_pipeline.chain.addresses import valid_address_mask
from reconciliation_pipeline.chain.history import events_window, ledger_window
from reconciliation_pipeline.chain.keys import instance_key
from reconciliation_pipeline.chain.reader import ChainReader, ProgressCallback, RetentionWindowError, RpcReadError
from reconciliation_pipeline.core import repairs, run_status, streaming
from reconciliation_pipeline.core.coverage import coverage_summary
from reconciliation_pipeline.core.diff import diff_entity, invariant_findings, key_address_column, resolve_tolerances
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, FindingStatus, Severity
from reconciliation_pipeline.core.drift_store import INCIDENT_KEY, persist_domain_run, promote_persisting
from reconciliation_pipeline.core.entry_versions import ComparedEntries, finish_sweep, known_versions
from reconciliation_pipeline.core.events import NamedValues, read_named
from reconciliation_pipeline.core.findings import concat_findings, empty_findings, findings_frame, with_domain
from reconciliation_pipeline.core.history import history_findings, record_replay
from reconciliation_pipeline.core.inflight import mark_in_flight
from reconciliation_pipeline.core.latency import fill_chain_change_times, run_latency
from reconciliation_pipeline.core.metadata import findings_metadata, frame_metadata, markdown_table, read_metadata
from reconciliation_pipeline.core.metrics import DomainRunMetrics, PushgatewayResource, findings_by_class_and_severity
from reconciliation_pipeline.core.missing_guard import MassMissingError, MissingRead, guard_read
from reconciliation_pipeline.core.money import stamp_money
from reconciliation_pipeline.core.origins import attach_origins
from reconciliation_pipeline.core.results import (
    AggregateResult,
    ChainSnapshot,
    Checked,
    DbSnapshot,
    DomainDiff,
    DomainInputs,
    RepairsDone,
    StepContext,
)
from reconciliation_pipeline.core.scopes import UPDATED_AT, Changed, RowFilter
from reconciliation_pipeline.core.snapshots import (
    ANSWERED,
    READ_MISSING,
    READ_UNCHANGED,
    data_key_ledger_keys,
    decoded_rows,
    read_entries,
    snapshot_db,
)
from reconciliation_pipeline.core.spec import (
    Aggregate,
    Authority,
    ChangeEvents,
    DataKey,
    DomainSpec,
    Entity,
    EntryVersions,
    EventKeys,
    IndexedKeys,
    InstanceOf,
    Invariants,
    KeyKind,
    PerRow,
    Scope,
    Source,
)
from reconciliation_pipeline.core.watermarks import (
    FULL_SWEEP,
    SweepPlan,
    open_incident_keys,
    plan_sweep,
    write_watermark,
)

NO_CRITICAL_DRIFT = "no_critical_drift"
CHAIN_VALUES_COPYABLE = "chain_values_copyable"


@dataclass(frozen=True)
class Output:
    value: Any
    metadata: dict[str, Any]
    checks: tuple[dg.AssetCheckResult, ...] = ()


PROGRESS_INTERVAL_S = 15.0
"""How often a long read says how far it got; a read shorter than this logs only its result line."""


def batch_progress(ctx: StepContext, what: str, interval_s: float = PROGRESS_INTERVAL_S) -> ProgressCallback:
    """Logs a long read's batch count every `interval_s`, so the run's log shows it moving; the
    step's own line with its count closes it (one line per step for a read that takes seconds)."""
    next_report = {"at": time.monotonic() + interval_s}

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now >= next_report["at"]:
            ctx.log.info(f"{what}: {done}/{total} getLedgerEntries batches")
            next_report["at"] = now + interval_s

    return report


def invariants_result(
    invariants: Invariants, identity: Any, key_column: str, frame: pd.DataFrame, side: str
) -> tuple[dg.AssetCheckResult, pd.DataFrame]:
    """One lazy pandera validation: the findings, and the check reporting them (WARN on the
    database side, ERROR on the chain: a contract breaking its own invariants)."""
    frame = invariants.rows(frame)
    found = invariant_findings(identity, key_column, invariants.model, frame, side=side, severity=invariants.severity)
    return invariants_check(invariants, found, len(frame), side), found


def invariants_check(invariants: Invariants, found: pd.DataFrame, rows_checked: int,
                     side: str) -> dg.AssetCheckResult:
    """The check reporting one side's invariant findings over `rows_checked` rows."""
    database = side == "database"
    return dg.AssetCheckResult(
        check_name=invariants.check,
        passed=found.empty,
        severity=dg.AssetCheckSeverity.WARN if database else dg.AssetCheckSeverity.ERROR,
        metadata={
            "violations": len(found),
            "rows_checked": rows_checked,
            "sample": markdown_table(found[["entity_id", "field", "db_value" if database else "chain_value"]],
                                     f"Every row satisfies: {invariants.description}."),
        },
    )


# -- plan ---------------------------------------------------------------------------


def _change_kind(spec: DomainSpec, scope: Scope, column: str) -> tuple[KeyKind, bool]:
    """The kind of the values a change scan reads, and whether they are entity keys."""
    for entity in spec.entities_of(scope):
        if entity.key == column:
            return entity.kind, True
    return KeyKind.ADDRESS, False


def _scan_changes(ctx: StepContext, spec: DomainSpec, scope: Scope, changes: ChangeEvents, plan: SweepPlan,
                  reader: ChainReader) -> SweepPlan:
    """The values change events name since the watermark: from getEvents, and for ledgers before
    its window from getLedgers metadata (at most REPLAY_MAX_LEDGERS of them). The run becomes a
    full sweep when it cannot know what changed: the events are out of reach of both, or one
    cannot be read. A full sweep of keys still reads the events of the whole retention: chain-only keys."""
    incremental = scope.incremental
    assert incremental is not None
    contract_id = getattr(ctx.contracts, changes.contract)
    kind, are_keys = _change_kind(spec, scope, changes.column)
    reason = plan.reason
    if plan.watermark is not None:
        first = plan.watermark.ledger_sequence + 1
        if first > plan.latest_ledger:
            return plan
        try:
            named = read_named(reader, contract_id, changes.topics, kind, changes.segments, start_ledger=first,
                               end_ledger=plan.latest_ledger + 1, max_replay_ledgers=ctx.settings.replay_max_ledgers)
        except (RetentionWindowError, RpcReadError) as error:
            reason = f"the change events since ledger {first} are out of reach: {error}"
        else:
            record_replay(ctx.engine, spec.domain, incremental.plan_asset, ctx.run.run_id, (), named.window)
            if not named.unreadable:
                return replace(plan, named=tuple(sorted(named.values, key=str)), events=named.events,
                               events_source=named.source)
            reason = (f"{len(named.unreadable)} change events since ledger {first} name a value this reader "
                      f"cannot parse (e.g. {named.unreadable[0]})")
    full = replace(plan, mode=FULL_SWEEP, reason=reason, watermark=None)
    if not are_keys:
        return full
    named = read_named(reader, contract_id, changes.topics, kind, changes.segments, end_ledger=plan.latest_ledger + 1)
    return replace(full, named=tuple(sorted(named.values, key=str)), events=named.events, events_source=named.source)


def plan_step(ctx: StepContext, spec: DomainSpec, scope: Scope) -> Output:
    """Full or incremental, and what changed: the watermark, the change events, open incidents."""
    incremental = scope.incremental
    assert incremental is not None
    with ctx.reader() as reader:
        latest = reader.latest_ledger()
        plan = plan_sweep(ctx.engine, spec.domain, incremental.watermark_scope, ctx.tags, latest)
        if isinstance(incremental.changes, ChangeEvents):
            plan = _scan_changes(ctx, spec, scope, incremental.changes, plan, reader)
    incidents = {e.name: tuple(open_incident_keys(ctx.engine, spec.domain, e)) for e in spec.entities_of(scope)}
    plan = replace(plan, incident_keys=incidents)
    ctx.log.info(f"{spec.domain}: {plan.mode} sweep ({plan.reason}); {len(plan.named)} values named by "
                 f"{plan.events} change events; {sum(map(len, incidents.values()))} keys with open incidents")
    return Output(plan, {
        "sweep_mode": plan.mode,
        "sweep_reason": plan.reason,
        "ledger_from": plan.ledger_from,
        "ledger_to": plan.latest_ledger,
        "change_events": plan.events,
        "event_source": plan.events_source,
        "values_named_by_events": len(plan.named),
        "db_since": plan.watermark.db_since.isoformat() if plan.watermark is not None else None,
        **{f"open_incidents/{name}": len(keys) for name, keys in incidents.items()},
    })


# -- database ---------------------------------------------------------------------


def _changed_filter(spec: DomainSpec, scope: Scope, source: Source, plan: SweepPlan) -> Changed | None:
    incremental = scope.incremental
    assert incremental is not None
    if not isinstance(incremental.changes, ChangeEvents):
        return None
    if plan.full or plan.watermark is None:
        return Changed(since=None)
    changes = incremental.changes
    keys = {str(k) for e in spec.entities_of(scope) if e.source_name == source.name
            for k in plan.incident_keys.get(e.name, ())}
    if changes.column == source.key_column:
        keys |= {str(v) for v in plan.named}
        return Changed(since=plan.watermark.db_since, keys=tuple(sorted(keys)))
    return Changed(since=plan.watermark.db_since, keys=tuple(sorted(keys)), column=changes.column,
                   values=tuple(str(v) for v in plan.named))


def _latest_ledger(ctx: StepContext) -> int | None:
    """The chain's latest ledger just before a database snapshot: an entry modified after it was
    written after the snapshot (a write in flight). None when the RPC cannot say: no finding is
    then in flight for that reason."""
    try:
        with ctx.reader() as reader:
            return reader.latest_ledger()
    except RpcReadError as error:
        ctx.log.warning(f"the latest ledger before the database snapshot is unknown: {error}")
        return None


def db_step(ctx: StepContext, spec: DomainSpec, scope: Scope, source: Source, plan: SweepPlan | None,
            only_keys: tuple[str, ...] | None) -> Output:
    """The source's rows within the scope, with its invariants checked once."""
    row_filter = RowFilter(
        window_end=ctx.window_end if scope.window and source.windowed else None,
        shard=ctx.shard,
        changed=_changed_filter(spec, scope, source, plan) if plan is not None else None,
        only_keys=only_keys,
    )
    # An incremental run's plan read the latest ledger just before: no second request.
    ledger_at_snapshot = plan.latest_ledger if plan is not None else _latest_ledger(ctx)
    if streaming.streams(ctx, spec, scope, source, plan, only_keys):
        return streaming.stored_db_step(ctx, source, row_filter, ledger_at_snapshot)
    snapshot = replace(_without_duplicate_keys(snapshot_db(ctx.engine, source, row_filter), source),
                       ledger_at_snapshot=ledger_at_snapshot)
    checks: tuple[dg.AssetCheckResult, ...] = ()
    if source.invariants is not None:
        check, found = invariants_result(source.invariants, source, source.key_column, snapshot.frame, "database")
        snapshot = replace(snapshot, invariant_findings=concat_findings([snapshot.invariant_findings, found]))
        checks = (check,)
    metadata: dict[str, Any] = {**frame_metadata(snapshot.frame), "snapshot_at": snapshot.taken_at.isoformat(),
                                "ledger_at_snapshot": ledger_at_snapshot, "rows_in_scope": snapshot.scope,
                                "duplicate_keys": len(snapshot.duplicate_keys),
                                **snapshot.counts}
    since = row_filter.changed.since if row_filter.changed is not None else None
    if since is not None:
        written = pd.to_datetime(snapshot.frame[UPDATED_AT], utc=True) > pd.Timestamp(since)
        metadata["rows_written_since_watermark"] = int(written.sum())
    ctx.log.info(f"db_{source.name}: {len(snapshot.frame)} rows ({snapshot.scope})")
    return Output(snapshot, metadata, checks)


def _without_duplicate_keys(snapshot: DbSnapshot, source: Source) -> DbSnapshot:
    """The snapshot less the rows whose key other rows share, each such key an INVARIANT_VIOLATION."""
    frame = snapshot.frame
    column = frame[source.key_column]
    # Canonical u64 keys compare as integers, and only the shared ones become text (text for
    # every key took 0.45 s per million rows).
    if column.dtype == np.uint64:
        shared = column.duplicated(keep=False)
        shared_text = column[shared].astype(str)
    else:
        key_text = column.astype(str)
        shared = key_text.duplicated(keep=False) & column.notna()
        shared_text = key_text[shared]
    if not shared.any():
        return snapshot
    counts = shared_text.value_counts().sort_index()
    keys = pd.Series(counts.index, dtype=object)
    found = findings_frame(
        entity_type=source.entity_type, entity_id=source.entity_id_prefix + keys, entity_key=keys,
        field=source.key_column, drift_class=DriftClass.INVARIANT_VIOLATION, severity=Severity.WARN,
        db_value=pd.Series([str(n) for n in counts], dtype=object),
        details=pd.Series([{"check": "unique_key", "side": "database", "rows": int(n),
                            "reason": f"{n} rows of {source.name} share this {source.key_column}: which one is right "
                                      "is unknown, so none is compared, repaired or counted checked"}
                           for n in counts], dtype=object),
    )
    return replace(snapshot, frame=frame[~shared].reset_index(drop=True), invariant_findings=found,
                   duplicate_keys=tuple(keys))


# -- chain --------------------------------------------------------------------------


@dataclass(frozen=True)
class Discovered:
    """Keys to read beyond the database's rows, the events whose key could not be read, and where
    the events came from."""

    keys: pd.Series
    unreadable: tuple[str, ...] = ()
    source: str | None = None


def _discovery_events(ctx: StepContext, spec: DomainSpec, entity: Entity, discovery: EventKeys,
                      reader: ChainReader) -> NamedValues:
    """The discovery events of the run: getEvents's whole window (closed before the partition's end);
    for a partition older than that window, its own day replayed from getLedgers metadata. A day
    neither serves leaves getEvents's window only, as discovery always was (logged, and the source
    says so): the run still compares every row the database has."""
    contract_id = getattr(ctx.contracts, discovery.contract)
    window = ctx.partition_window
    if window is not None and window.start.timestamp() < events_window(reader)[1]:
        try:
            ledgers, _ = ledger_window(reader, window.start, window.end)
            named = read_named(reader, contract_id, discovery.topics, entity.kind, (discovery.segment,),
                               start_ledger=ledgers.start_ledger, end_ledger=ledgers.end_ledger,
                               closed_before=ctx.window_end, max_replay_ledgers=ctx.settings.replay_max_ledgers)
        except (RetentionWindowError, RpcReadError) as refused:
            ctx.log.warning(f"chain_{entity.name}: the partition's day cannot be replayed, so only chain-only keys "
                            f"in getEvents's window are discovered: {refused}")
            named = read_named(reader, contract_id, discovery.topics, entity.kind, (discovery.segment,),
                               closed_before=ctx.window_end)
            named = replace(named, source=f"{named.source} (the partition's day is outside both windows)")
    else:
        named = read_named(reader, contract_id, discovery.topics, entity.kind, (discovery.segment,),
                           closed_before=ctx.window_end)
    record_replay(ctx.engine, spec.domain, f"chain_{entity.name}", ctx.run.run_id, ctx.partition_keys, named.window)
    return named


def _discovered_keys(ctx: StepContext, spec: DomainSpec, scope: Scope, entity: Entity, plan: SweepPlan | None,
                     reader: ChainReader) -> Discovered:
    empty = pd.Series([], dtype=object)
    if plan is not None:
        changes = scope.incremental.changes if scope.incremental is not None else None
        if isinstance(changes, ChangeEvents) and changes.column == entity.key:
            return Discovered(pd.Series([*plan.named, *plan.incident_keys.get(entity.name, ())], dtype=object))
        return Discovered(empty)
    discovery = entity.discovery
    if isinstance(discovery, EventKeys):
        named = _discovery_events(ctx, spec, entity, discovery, reader)
        keys = entity.kind.normalize(pd.Series(sorted(named.values, key=str), dtype=object))
        if ctx.shard is not None:
            keys = keys[(keys.astype("uint64") % ctx.shard.count) == ctx.shard.index]
        ctx.log.info(f"chain_{entity.name}: {named.events} events ({named.source}) name {len(named.values)} keys")
        return Discovered(keys, named.unreadable, named.source)
    if isinstance(discovery, IndexedKeys):
        with ctx.engine.connect() as connection:
            keys = connection.execute(spec.sql.query(discovery.query), {"window_end": ctx.window_end}).scalars().all()
        return Discovered(pd.Series(keys, dtype=object))
    return Discovered(empty)


def chain_step(ctx: StepContext, spec: DomainSpec, scope: Scope, entity: Entity, inputs: DomainInputs) -> Output:
    """The entity's entries for every row of its source (and every key only the chain knows),
    read 200 per request within the run's budget, decoded strictly, invariants checked once."""
    stored = inputs.sources.get(entity.source_name)
    if stored is not None and stored.stored is not None:
        return streaming.streamed_chain_step(ctx, spec, scope, entity, inputs)
    skipped = spec.hooks.skip_compare(ctx, inputs) if spec.hooks.skip_compare is not None else None
    rows = inputs.rows_of(entity.source_name)
    key = entity.key
    address_column = key_address_column(entity)
    valid = (valid_address_mask(rows[address_column], allow_muxed=entity.muxed_accounts) if address_column is not None
             else pd.Series(True, index=rows.index, dtype=bool))
    readable = rows[valid]
    not_read_invalid = rows.loc[~valid, key].astype(object).reset_index(drop=True)
    if skipped is not None:
        readable = readable.iloc[0:0]
    plan = inputs.plan
    read_started_at = datetime.now(UTC)
    with ctx.reader() as reader:
        discovery = (_discovered_keys(ctx, spec, scope, entity, plan, reader)
                     if skipped is None else Discovered(pd.Series([], dtype=object)))
        discovered = discovery.keys
        extra = entity.kind.normalize(discovered) if len(discovered) else discovered
        known = entity.kind.normalize(readable[key]) if len(readable) else readable[key]
        new_keys = pd.Series(pd.Index(extra).difference(pd.Index(known)), dtype=object)
        # A key the database holds twice is not chain-only: it is left out on both sides.
        duplicates = _duplicate_keys(inputs, entity)
        new_keys = new_keys[~new_keys.astype(str).isin(duplicates)].reset_index(drop=True)
        contract_id, absent, context = None, None, None
        if isinstance(entity.key_source, DataKey):
            contract_id = getattr(ctx.contracts, entity.key_source.contract)
            keys = pd.concat([readable[key].astype(object), new_keys], ignore_index=True)
            ledger_keys = pd.Series(data_key_ledger_keys(entity.key_source, entity.kind, contract_id, list(keys)),
                                    dtype=object)
        elif isinstance(entity.key_source, InstanceOf):
            keys = readable[key].reset_index(drop=True)
            ledger_keys = readable[entity.key_source.column].map(instance_key).reset_index(drop=True)
        else:
            assert isinstance(entity.key_source, PerRow)
            ordered = readable.sort_values(key).reset_index(drop=True)
            built = entity.key_source.build(ordered, ctx.contracts)
            keys, ledger_keys, absent, context = ordered[key], built.keys, built.absent, built.context
        versions = (known_versions(ctx.engine, plan, spec.domain, entity, rows)
                    if plan is not None and scope.incremental is not None
                    and isinstance(scope.incremental.changes, EntryVersions) else None)
        frame, stats = read_entries(reader, entity, key, entity.kind, keys, ledger_keys, absent=absent,
                                    context=context, versions=versions,
                                    progress=batch_progress(ctx, f"chain_{entity.name}"))
    if skipped is None:
        incident_keys = plan.incident_keys.get(entity.name, ()) if plan is not None else ()
        _guard_missing(ctx, spec, scope, entity, frame, known, incident_keys, contract_id, stats.latest_ledger)
    snapshot = ChainSnapshot(
        entity=entity.name, frame=frame, ledger_sequence=stats.latest_ledger, requests=stats.requests,
        failed_batches=stats.failed_batches, contract_id=contract_id, not_read_invalid=not_read_invalid,
        discovered=len(new_keys), mode=plan.mode if plan is not None else None,
        unreadable_events=discovery.unreadable, skipped=skipped, read_started_at=read_started_at,
    )
    checks: tuple[dg.AssetCheckResult, ...] = ()
    if entity.chain_invariants is not None:
        check, found = invariants_result(entity.chain_invariants, entity, key, decoded_rows(frame), "chain")
        snapshot = replace(snapshot, invariant_findings=found)
        checks = (check,)
    metadata = read_metadata(snapshot)
    if discovery.source is not None:
        metadata["discovery_source"] = discovery.source
    if skipped is not None:
        metadata["skipped"] = skipped
    ctx.log.info(f"chain_{entity.name}: {len(frame)} entries read in {stats.requests} requests at ledger "
                 f"{stats.latest_ledger} ({len(new_keys)} known only on chain)")
    return Output(snapshot, metadata, checks)


def _duplicate_keys(inputs: DomainInputs, entity: Entity) -> set[str]:
    source = inputs.sources.get(entity.source_name)
    return set(source.duplicate_keys) if source is not None else set()


def _guard_missing(ctx: StepContext, spec: DomainSpec, scope: Scope, entity: Entity, frame: pd.DataFrame,
                   known: pd.Series, incident_keys: tuple[Any, ...], contract_id: str | None,
                   latest_ledger: int | None) -> None:
    """Fails the step (nothing persisted) when the database's keys are missing on chain en masse.

    Only keys the database's rows asked for count, and only those that were answered; keys with
    open incidents are left out (their absence is already known)."""
    answered, missing = answered_and_missing(entity, frame, known, incident_keys)
    guard_missing_read(ctx, spec, scope, entity, answered, missing, contract_id, latest_ledger)


def answered_and_missing(entity: Entity, frame: pd.DataFrame, known: pd.Series,
                         incident_keys: tuple[Any, ...]) -> tuple[int, int]:
    """Of the database's keys (less those with open incidents): how many the RPC answered, and how
    many of those are missing on chain."""
    asked = {str(k) for k in known} - {str(k) for k in incident_keys}
    answered = frame[frame[entity.key].astype(str).isin(asked) & frame["read_status"].isin(ANSWERED)]
    return len(answered), int((answered["read_status"] == READ_MISSING).sum())


def guard_missing_read(ctx: StepContext, spec: DomainSpec, scope: Scope, entity: Entity, answered: int,
                       missing: int, contract_id: str | None, latest_ledger: int | None) -> None:
    read = MissingRead(
        domain=spec.domain, entity=entity.name, scope=scope.name, keys=answered, missing=missing,
        contract_id=contract_id,
        contract_variable=entity.key_source.contract.upper() if isinstance(entity.key_source, DataKey) else None,
        latest_ledger=latest_ledger,
    )
    try:
        guard_read(ctx.engine, read, ctx.settings.missing_guard(), ctx.run.run_id)
    except MassMissingError as error:
        ctx.log.error(str(error))
        raise dg.Failure(description=str(error), metadata={
            "keys": read.keys, "missing": read.missing, "missing_share": round(read.share, 4),
            "contract_id": contract_id, "latest_ledger": latest_ledger}) from error


# -- aggregates ---------------------------------------------------------------------


def aggregate_step(ctx: StepContext, aggregate: Aggregate, inputs: DomainInputs) -> Output:
    result = aggregate.run(ctx, inputs)
    assert isinstance(result.value, AggregateResult)
    return Output(result.value, {**frame_metadata(result.value.frame), **result.metadata}, tuple(result.checks))


# -- discrepancies ------------------------------------------------------------------


def drift_classes(spec: DomainSpec, produces: tuple[DriftClass, ...]) -> tuple[DriftClass, ...]:
    """The drift classes this domain's findings can have (its metadata shows only those)."""
    classes: set[DriftClass] = set(produces)
    for entity in spec.entities:
        classes |= {DriftClass.MISSING_ON_CHAIN, DriftClass.CHAIN_READ_ERROR, DriftClass.ARCHIVED,
                    DriftClass.TTL_EXPIRING, *(f.drift_class for f in entity.compared)}
        if entity.discovery is not None or any(s.incremental is not None for s in spec.scopes):
            classes.add(DriftClass.MISSING_IN_DB)
        if entity.address_columns or key_address_column(entity) is not None:
            classes.add(DriftClass.INVALID_ADDRESS)
        if entity.chain_invariants is not None:
            classes.add(DriftClass.INVARIANT_VIOLATION)
    if spec.aggregates or any(s.invariants is not None for s in spec.sources):
        classes.add(DriftClass.INVARIANT_VIOLATION)
    return tuple(c for c in DriftClass if c in classes)


def _unreadable_event_findings(entity: Entity, chain: ChainSnapshot) -> pd.DataFrame:
    """A CHAIN_READ_ERROR per event whose key could not be read: a chain-only entry may hide behind it."""
    if not chain.unreadable_events:
        return empty_findings()
    ids = pd.Series([f"event_{e}" for e in chain.unreadable_events], dtype=object)
    return findings_frame(entity_type=entity.entity_type, entity_id=ids, entity_key=ids, field=WHOLE_ENTITY,
                          drift_class=DriftClass.CHAIN_READ_ERROR, severity=entity.read_error_severity,
                          ledger_sequence=chain.ledger_sequence, details=pd.Series(
                              [{"reason": "an event's key segment does not follow its layout", "event_id": e}
                               for e in chain.unreadable_events], dtype=object))


def _source_invariants(spec: DomainSpec, scope: Scope, source: Source, inputs: DomainInputs) -> pd.DataFrame:
    """The source's invariant findings, less rows every entity of this run left unchanged."""
    found = inputs.sources[source.name].invariant_findings
    entities = [e for e in spec.entities_of(scope) if e.source_name == source.name]
    if found.empty or not entities:
        return found
    unchanged: set[str] | None = None
    for entity in entities:
        frame = inputs.chains[entity.name].frame
        keys = set(frame.loc[frame["read_status"] == READ_UNCHANGED, entity.key].astype(str))
        unchanged = keys if unchanged is None else unchanged & keys
    return found[~found["entity_key"].isin(unchanged or set())].reset_index(drop=True)


def _blocked_repairs(plan: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """Planned repairs that would copy a value from a chain entry breaking its own invariants."""
    chain_side = findings[(findings["drift_class"] == DriftClass.INVARIANT_VIOLATION.value)
                          & findings["chain_value"].notna()]
    pairs = pd.MultiIndex.from_frame(chain_side[["entity_type", "entity_id"]].astype(str))
    planned = pd.MultiIndex.from_frame(plan[["entity_type", "entity_id"]].astype(str)) if len(plan) else pairs[:0]
    return plan[planned.isin(pairs)] if len(plan) else plan


def discrepancies_step(ctx: StepContext, spec: DomainSpec, scope: Scope, inputs: DomainInputs,
                       pushgateway: PushgatewayResource, classes: tuple[DriftClass, ...],
                       steps_pending: int = 0) -> Output:
    """Every entity's diff, the aggregates and the domain's own findings, persisted in one
    transaction (findings replace the partition's, incidents open, confirm and resolve), the
    incremental watermark moved, metrics pushed, repairs planned."""
    started_at = datetime.now(UTC)
    skipped = spec.hooks.skip_compare(ctx, inputs) if spec.hooks.skip_compare is not None else None
    if skipped is not None:
        ctx.log.info(f"{spec.domain}: nothing compared: {skipped}")
        run_status.record_recomputed(ctx.engine, ctx.run.run_id, spec.domain, skipped, steps_pending)
        diff = DomainDiff(empty_findings(), Checked.none(), None, None, repairs.empty_plan(), skipped=skipped)
        return Output(diff, {"skipped": skipped, "findings": 0}, _discrepancy_checks(spec, scope, diff))
    parts: list[pd.DataFrame] = []
    checked: list[Checked] = []
    ledgers: list[int] = []
    # A streaming sweep diffed as it read: from here on its frames hold only the rows findings name.
    inputs = streaming.finding_rows(inputs)
    for entity in spec.entities_of(scope):
        chain = inputs.chains[entity.name]
        if spec.hooks.exclude_chain_keys is not None:
            excluded = spec.hooks.exclude_chain_keys(entity.name, inputs)
            chain = replace(chain, frame=chain.frame[~chain.frame[entity.key].isin(excluded)])
        if chain.streamed is not None:
            found, settled = chain.streamed.findings, chain.streamed.checked
        else:
            found, settled = diff_entity(entity, inputs.rows_of(entity.source_name), chain,
                                         resolve_tolerances(entity, ctx.settings), ctx.settings.ttl_warning_ledgers)
        parts += [found, chain.invariant_findings[chain.invariant_findings["entity_key"].isin(
            chain.frame[entity.key].astype(str))], _unreadable_event_findings(entity, chain)]
        checked.append(settled)
        if chain.ledger_sequence is not None:
            ledgers.append(chain.ledger_sequence)
    for source in spec.sources_of(scope):
        parts.append(_source_invariants(spec, scope, source, inputs))
        duplicates = pd.Series(inputs.sources[source.name].duplicate_keys, dtype=object)
        checked.append(Checked.of(source.entity_type, pd.Series([], dtype=object), unchecked=len(duplicates),
                                  unchecked_ids=source.entity_id_prefix + duplicates))
    for aggregate in inputs.aggregates.values():
        parts.append(aggregate.findings)
        checked.append(aggregate.checked)
        ledgers += [aggregate.ledger_sequence] if aggregate.ledger_sequence is not None else []
    if spec.hooks.findings is not None:
        extra = spec.hooks.findings(ctx, inputs)
        parts.append(extra.findings)
        checked.append(extra.checked)
        ledgers += [extra.ledger_sequence] if extra.ledger_sequence is not None else []
    history, history_checked = history_findings(ctx.engine, spec.domain, ctx.run.run_id, ctx.partition_keys)
    parts.append(history)
    checked.append(history_checked)
    findings = with_domain(concat_findings(parts), spec.domain)
    if spec.hooks.decorate is not None and len(findings):
        findings = spec.hooks.decorate(findings, inputs)
    findings = promote_persisting(ctx.engine, spec.domain, ctx.run.run_id,
                                  mark_in_flight(ctx, spec, scope, inputs, findings))
    findings, origins = attach_origins(ctx, spec, scope, inputs, findings)
    findings = stamp_money(findings, spec, inputs, ctx.contracts)
    plan = repairs.empty_plan()
    drift = findings[findings["status"] == FindingStatus.DRIFT.value]
    if plans_repairs(spec, scope):
        # Nothing in flight is repaired: the side written in between may already be right.
        plans = [repairs.plan_field_repairs(spec.domain, e, drift) for e in spec.entities_of(scope)]
        if spec.hooks.repairs is not None:
            plans.insert(0, spec.hooks.repairs(ctx, inputs, drift))
        plans = [p for p in plans if len(p)]
        plan = pd.concat(plans, ignore_index=True) if plans else plan
    snapshots = [s.taken_at for s in inputs.sources.values()]
    aggregate_snapshots = [a.db_snapshot_at for a in inputs.aggregates.values() if a.db_snapshot_at is not None]
    diff = DomainDiff(findings=findings, checked=Checked.combine(checked), ledger_sequence=max(ledgers, default=None),
                      db_snapshot_at=min(snapshots or aggregate_snapshots, default=None), repair_plan=plan)
    scoped = any(s.only_keys is not None for s in inputs.sources.values())
    run = replace(ctx.run, partition_key=None) if scoped else ctx.run
    summary = persist_domain_run(ctx.engine, run, spec.domain, diff, started_at=started_at,
                                 policy=ctx.settings.incident_policy(), steps_pending=steps_pending)
    streaming.remove_stored(inputs)
    watermark = _finish_incremental(ctx, spec, scope, inputs, diff)
    with ctx.reader() as reader:
        fill_chain_change_times(ctx.engine, reader, spec.domain)
    exempt = _exempt_mask(findings, summary.exempt)
    metrics = DomainRunMetrics(
        domain=spec.domain, run_id=ctx.run.run_id, job_name=ctx.run.job_name, duration_s=ctx.budget.elapsed_s(),
        status=summary.status, findings=findings_by_class_and_severity(drift),
        errors={
            **{f"read_{name}": chain.failed_batches for name, chain in inputs.chains.items()},
            "decode": sum(int(chain.frame["read_error"].map(
                lambda e: isinstance(e, str) and e.startswith("undecodable")).sum()) for chain in inputs.chains.values()),
            "time_limit": diff.checked.not_read,
            "finding_storage": summary.storage_errors,
        },
        entities_checked=diff.checked.count, entities_unchecked=diff.checked.unchecked,
        finished_at_unix=time.time(), findings_exempt=int(exempt.sum()),
        coverage=coverage_summary(ctx.engine, spec.domain, datetime.now(UTC)),
        latency=run_latency(ctx.engine, spec.domain, ctx.run.run_id),
    )
    pushed = pushgateway.push(metrics, ctx.log)
    ctx.log.info(
        f"{spec.domain}: {summary.findings} findings, {summary.in_flight} in flight ({summary.status}); "
        f"{diff.checked.count} entities "
        f"compared, {diff.checked.unchecked} not checked ({diff.checked.not_read} at the time limit); incidents "
        f"confirmed {summary.confirmed}, resolved {summary.resolved}; {len(plan)} repairs planned"
    )
    if summary.storage_errors:
        ctx.log.warning(f"{spec.domain}: {summary.storage_errors} findings stored without their values (PostgreSQL "
                        "could not store those); recon.discrepancies.details says why for each")
    metadata = {
        **findings_metadata(findings, classes),
        "run_status": summary.status,
        "findings_stored_without_values": summary.storage_errors,
        "entities_checked": diff.checked.count,
        "entities_unchecked": diff.checked.unchecked,
        "entities_not_read_time_limit": diff.checked.not_read,
        "incidents_opened_or_seen": summary.opened_or_seen,
        "incidents_opened": summary.opened,
        "incidents_confirmed": summary.confirmed,
        "incidents_resolved": summary.resolved,
        "findings_in_flight": summary.in_flight,
        **origins.as_metadata(),
        "ledger_sequence": diff.ledger_sequence,
        "repairs_planned": len(plan),
        **watermark,
        **metrics.as_metadata(),
        "metrics_pushed": pushed,
    }
    return Output(diff, metadata, _discrepancy_checks(spec, scope, diff, exempt))


def _exempt_mask(findings: pd.DataFrame, exempt_keys: pd.DataFrame) -> pd.Series:
    """Which findings a live exemption rule covers (persisting matched them)."""
    if exempt_keys.empty or findings.empty:
        return pd.Series(False, index=findings.index, dtype=bool)
    keys = pd.MultiIndex.from_frame(findings[INCIDENT_KEY].astype(str))
    return pd.Series(keys.isin(pd.MultiIndex.from_frame(exempt_keys[INCIDENT_KEY].astype(str))), index=findings.index)


def _discrepancy_checks(spec: DomainSpec, scope: Scope, diff: DomainDiff,
                        exempt: pd.Series | None = None) -> tuple[dg.AssetCheckResult, ...]:
    """`no_critical_drift` (exempt findings are known cases: they do not fail it), and where repairs
    copy chain values, the blocking `chain_values_copyable`."""
    findings, plan = diff.findings, diff.repair_plan
    drift = findings["status"] == FindingStatus.DRIFT.value  # in flight: settled by the next run
    live = findings[drift if exempt is None else drift & ~exempt]
    critical = live[live["severity"] == Severity.CRITICAL.value]
    checks = [dg.AssetCheckResult(
        check_name=NO_CRITICAL_DRIFT, passed=critical.empty, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"critical_findings": len(critical), "critical_findings_exempt": int(
            (findings.loc[drift, "severity"] == Severity.CRITICAL.value).sum()) - len(critical), "sample": markdown_table(
            critical[["entity_id", "field", "drift_class", "db_value", "chain_value"]], "No critical drift.")},
    )]
    if copies_chain_values(spec, scope):
        blocked = _blocked_repairs(plan, findings)
        checks.append(dg.AssetCheckResult(
            check_name=CHAIN_VALUES_COPYABLE, passed=blocked.empty, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"repairs_blocked": len(blocked), "sample": markdown_table(
                blocked[["entity_id", "field", "observed_value", "target_value"]],
                "No planned repair copies a value from a chain entry that breaks its own invariants.")},
        ))
    return tuple(checks)


def plans_repairs(spec: DomainSpec, scope: Scope) -> bool:
    """Whether a scope can plan repairs at all: a repairable field or a domain repair hook."""
    return scope.repairs and (spec.hooks.repairs is not None or any(e.repairable for e in spec.entities_of(scope)))


def copies_chain_values(spec: DomainSpec, scope: Scope) -> bool:
    """Whether a scope's repairs copy chain values into the database (a blocking check guards them)."""
    return scope.repairs and any(e.authority is Authority.CHAIN and e.repairable for e in spec.entities_of(scope))


def _finish_incremental(ctx: StepContext, spec: DomainSpec, scope: Scope, inputs: DomainInputs,
                        diff: DomainDiff) -> dict[str, Any]:
    """Move the incremental watermark (and record compared entry versions) after persisting."""
    incremental, plan = scope.incremental, inputs.plan
    if incremental is None or plan is None:
        return {}
    snapshot_at = diff.db_snapshot_at or datetime.now(UTC)
    if isinstance(incremental.changes, EntryVersions):
        recorded = finish_sweep(
            ctx.engine, spec.domain, ctx.run.run_id,
            [ComparedEntries(e.entity_type, inputs.chains[e.name].frame, e.key, plan.mode)
             for e in spec.entities_of(scope)],
            ledger_sequence=plan.latest_ledger, db_snapshot_at=snapshot_at,
        )
        return {"sweep_mode": plan.mode, "watermark_moved": True, "entry_versions_recorded": recorded}
    # Entities left unread at the time limit have no finding to re-check them by: the
    # watermark stays, so the next run looks at the same changes again.
    moved = diff.checked.not_read == 0
    if moved:
        write_watermark(ctx.engine, spec.domain, incremental.watermark_scope, ctx.run.run_id, plan.latest_ledger,
                        snapshot_at)
    return {"sweep_mode": plan.mode, "watermark_moved": moved}


# -- repairs --------------------------------------------------------------------------


def repairs_step(ctx: StepContext, spec: DomainSpec, diff: DomainDiff, apply: bool, dry_run: bool) -> Output:
    """Record the plan, apply it when the run asks (compare-and-swap, audited), report it."""
    plan = diff.repair_plan
    repairs.record_plan(ctx.engine, ctx.run, spec.domain, plan)
    if apply and not dry_run:
        outcome = repairs.apply_plan(ctx.engine, ctx.run, plan, spec.sql)
    else:
        outcome = repairs.RepairOutcome(planned=len(plan))
    repairs.record_run_repairs(ctx.engine, ctx.run, spec.domain, dry_run=dry_run, outcome=outcome)
    mode = "dry run" if dry_run else ("apply" if apply else "plan only")
    ctx.log.info(f"{spec.domain} repairs ({mode}): planned {outcome.planned}, applied {outcome.applied}, "
                 f"skipped {outcome.skipped}, failed {outcome.failed}")
    return Output(RepairsDone(plan, outcome), {
        "repair_mode": mode,
        "repairs_planned": outcome.planned,
        "repairs_applied": outcome.applied,
        "repairs_skipped": outcome.skipped,
        "repairs_failed": outcome.failed,
        "plan": markdown_table(plan[["entity_id", "field", "observed_value", "target_value"]], "Nothing to repair."),
    })
