"""Drift in flight: a write caught between the two snapshots.

A run reads the database, then the chain, seconds (or, in a long sweep, minutes)
apart. An entity written on either side in between looks like drift that the
next run no longer sees. Such a finding is marked `in_flight` when

- its chain entry was last modified in a ledger after the one that was latest
  when the database snapshot was taken (the app's row may follow), or
- its database row was written (`updated_at`) after the chain read began (the
  snapshot holds the row as it was before: read again now, here).

An in-flight finding is recorded with that status and the reason, is re-checked
by the next run (incremental runs include its entity) and opens no incident
unless the next run sees it again (`core.drift_store`). Findings about what an
entry *is* (archived, unreadable, breaking invariants) are never in flight.
"""

from __future__ import annotations

import pandas as pd

from reconciliation_pipeline.core.drift import DriftClass, FindingStatus
from reconciliation_pipeline.core.results import DomainInputs, StepContext
from reconciliation_pipeline.core.scopes import UPDATED_AT, RowFilter
from reconciliation_pipeline.core.snapshots import snapshot_db
from reconciliation_pipeline.core.spec import DomainSpec, Scope, Source

IN_FLIGHT_CLASSES = frozenset({DriftClass.VALUE_MISMATCH.value, DriftClass.STATUS_MISMATCH.value,
                               DriftClass.MISSING_ON_CHAIN.value, DriftClass.MISSING_IN_DB.value})


def mark_in_flight(ctx: StepContext, spec: DomainSpec, scope: Scope, inputs: DomainInputs,
                   findings: pd.DataFrame) -> pd.DataFrame:
    """The findings with `status` in_flight (and the reason in their details) where a side was written
    between the two snapshots."""
    if findings.empty:
        return findings
    reasons = pd.Series(None, index=findings.index, dtype=object)
    for entity in spec.entities_of(scope):
        chain = inputs.chains.get(entity.name)
        snapshot = inputs.sources.get(entity.source_name)
        if chain is None:
            continue
        mine = ((findings["entity_type"] == entity.entity_type) & findings["drift_class"].isin(IN_FLIGHT_CLASSES)
                & reasons.isna())
        if not mine.any():
            continue
        keys = findings.loc[mine, "entity_key"]
        if snapshot is not None and snapshot.ledger_at_snapshot is not None:
            frame = chain.frame[chain.frame["last_modified_ledger"].notna()]
            modified = pd.Series(frame["last_modified_ledger"].astype("int64").to_numpy(),
                                 index=frame[entity.key].astype(str)).groupby(level=0).max()
            ledgers = keys.map(modified)
            late = ledgers > snapshot.ledger_at_snapshot
            reasons[late[late].index] = [
                f"the chain entry was modified in ledger {int(n)}, after the database snapshot (taken when "
                f"ledger {snapshot.ledger_at_snapshot} was the latest)" for n in ledgers[late]]
        unexplained = keys[reasons[keys.index].isna()]
        if (isinstance(entity.source, Source) and snapshot is not None and UPDATED_AT in snapshot.frame.columns
                and chain.read_started_at is not None and len(unexplained)):
            fresh = snapshot_db(ctx.engine, entity.source, RowFilter(only_keys=tuple(sorted(set(unexplained))))).frame
            written = pd.Series(pd.to_datetime(fresh[UPDATED_AT], utc=True).to_numpy(),
                                index=fresh[entity.source.key_column].astype(str)).groupby(level=0).max()
            times = pd.to_datetime(unexplained.map(written), utc=True)
            late = times > pd.Timestamp(chain.read_started_at)
            reasons[late[late].index] = [
                f"the database row was written at {t.isoformat(timespec='seconds')}, after the chain read began at "
                f"{pd.Timestamp(chain.read_started_at).isoformat(timespec='seconds')}" for t in times[late]]
    flagged = reasons.map(lambda r: isinstance(r, str)).astype(bool)
    if not flagged.any():
        return findings
    status = findings["status"].mask(flagged, FindingStatus.IN_FLIGHT.value)
    details = [{**d, "in_flight": r} if f else d
               for d, r, f in zip(findings["details"], reasons, flagged, strict=True)]
    return findings.assign(status=status, details=pd.Series(details, index=findings.index, dtype=object))
