"""Guarded, audited repairs of the non-authoritative database side.

A repair is planned with the value the run saw (`observed_value`) and the
authoritative value (`target_value`). Applying it runs the field's
compare-and-swap UPDATE, which only matches while the row still holds the
observed value, in one transaction with the repair's state change and its
audit row. A concurrent application write therefore wins, and the repair is
recorded as skipped. The idempotency key makes planning the same repair twice
a no-op, so re-running a partition never applies anything twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.drift import DriftClass
from reconciliation_pipeline.core.drift_store import RunInfo
from reconciliation_pipeline.core.spec import Authority, Entity
from reconciliation_pipeline.core.sql import PIPELINE_SQL, SqlFolder

REPAIRABLE_CLASSES = (DriftClass.VALUE_MISMATCH.value, DriftClass.STATUS_MISMATCH.value)
PLAN_COLUMNS = (
    "idempotency_key",
    "entity_type",
    "entity_id",
    "entity_key",
    "field",
    "repair_query",
    "observed_value",
    "target_value",
)


class UnexpectedRowCount(RuntimeError):
    """A compare-and-swap UPDATE matched more than one row: the repair query is wrong."""


@dataclass(frozen=True)
class RepairOutcome:
    planned: int
    applied: int = 0
    skipped: int = 0
    failed: int = 0
    refused: int = 0
    """Stored repairs that did not match the plan they claimed to be: nothing ran."""


def idempotency_key(domain: str, entity_type: str, entity_key: str, field: str, observed: str, target: str) -> str:
    text = "\x1f".join((domain, entity_type, entity_key, field, observed, target))
    return hashlib.sha256(text.encode()).hexdigest()


def empty_plan() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in PLAN_COLUMNS})


def plan_rows(
    domain: str,
    entity_type: str | pd.Series,
    entity_id: pd.Series,
    entity_key: pd.Series,
    field: str | pd.Series,
    query: str | pd.Series,
    observed: pd.Series,
    target: pd.Series,
) -> pd.DataFrame:
    """Repair plan rows (aligned series or scalars), each with its idempotency key."""
    plan = pd.DataFrame(
        {
            "entity_type": entity_type,
            "entity_id": entity_id,
            "entity_key": entity_key,
            "field": field,
            "repair_query": query,
            "observed_value": observed,
            "target_value": target,
        },
        index=entity_id.index,
        dtype=object,
    )
    if plan.empty:
        return empty_plan()
    plan.insert(
        0,
        "idempotency_key",
        [
            idempotency_key(domain, t, k, f, "" if o is None else o, "" if v is None else v)
            for t, k, f, o, v in zip(plan["entity_type"], plan["entity_key"], plan["field"],
                                     plan["observed_value"], plan["target_value"], strict=True)
        ],
    )
    return plan[list(PLAN_COLUMNS)].reset_index(drop=True)


def plan_field_repairs(domain: str, entity: Entity, findings: pd.DataFrame) -> pd.DataFrame:
    """The repairs the findings call for: authoritative chain values for repairable fields."""
    if entity.authority is not Authority.CHAIN or findings.empty or not entity.repairable:
        return empty_plan()
    repairable = entity.repairable
    wanted = findings[
        (findings["entity_type"] == entity.entity_type)
        & findings["drift_class"].isin(REPAIRABLE_CLASSES)
        & findings["field"].isin(list(repairable))
        & findings["db_value"].notna()
        & findings["chain_value"].notna()
    ]
    return plan_rows(domain, wanted["entity_type"], wanted["entity_id"], wanted["entity_key"], wanted["field"],
                     wanted["field"].map(lambda f: repairable[f].repair_query), wanted["db_value"],
                     wanted["chain_value"])


def record_plan(engine: Engine, run: RunInfo, domain: str, plan: pd.DataFrame) -> None:
    if plan.empty:
        return
    params = [{"run_id": run.run_id, "domain": domain, **row} for row in plan.to_dict("records")]
    with engine.begin() as connection:
        sql.lock_domain_writes(connection, domain)
        connection.execute(sql.query("recon/queries/insert_repair_plan.sql"), params)


MATCHED_FIELDS = ("entity_type", "entity_id", "entity_key", "field", "repair_query", "observed_value",
                  "target_value")
"""What a stored repair must agree on with this run's plan before anything runs."""
SKIPPED_NOTE = ("row changed since the snapshot: compare-and-swap found a different value; "
                "the application's write wins")


def _finish(connection: Connection, run: RunInfo, repair: Mapping[str, Any], state: str, note: str | None,
            after_value: str | None) -> bool:
    """Record a repair's end and its audit row; False when another run finished it first."""
    claimed = connection.execute(
        sql.query("recon/queries/finish_repair.sql"),
        {"repair_id": repair["repair_id"], "state": state, "reason": note, "run_id": run.run_id},
    ).rowcount
    if claimed == 0:
        return False
    connection.execute(
        sql.query("recon/queries/insert_repair_audit.sql"),
        {"repair_id": repair["repair_id"], "run_id": run.run_id, "action": state,
         "before_value": repair["observed_value"], "after_value": after_value, "note": note},
    )
    return True


def apply_plan(engine: Engine, run: RunInfo, plan: pd.DataFrame, queries: SqlFolder = PIPELINE_SQL) -> RepairOutcome:
    """Apply the still-planned repairs among `plan`, each in its own transaction.

    What runs is this run's plan, which comes from the spec: its query (read from
    `queries`, which refuses any path outside its folder) and its values. A row in
    `recon.repairs` only says whether the repair is still to do; one that does not
    match the plan it claims to be (a planted or altered row) is refused, and
    nothing runs for it.
    """
    if plan.empty:
        return RepairOutcome(planned=0)
    planned = {row["idempotency_key"]: row for row in plan.to_dict("records")}
    with engine.connect() as connection:
        pending = connection.execute(
            sql.query("recon/queries/select_planned_repairs.sql"),
            {"idempotency_keys": list(planned)},
        ).mappings().all()
    counts = {"applied": 0, "skipped": 0, "failed": 0, "refused": 0}
    for repair in pending:
        wanted = planned[repair["idempotency_key"]]
        differs = [f for f in MATCHED_FIELDS if repair[f] != wanted[f]]
        try:
            with engine.begin() as connection:
                if differs:
                    note = (f"refused: the stored repair does not match this run's plan ({', '.join(differs)} "
                            "differ); nothing was run")
                    if _finish(connection, run, repair, "refused", note, None):
                        counts["refused"] += 1
                    continue
                values = {"entity_key": wanted["entity_key"], "observed_value": wanted["observed_value"],
                          "target_value": wanted["target_value"]}
                query = wanted["repair_query"]
                matched = connection.execute(queries.query(query), values).rowcount
                if matched > 1:
                    raise UnexpectedRowCount(f"{query} matched {matched} rows for {wanted['entity_id']}")
                state = "applied" if matched == 1 else "skipped"
                if not _finish(connection, run, repair, state, None if matched == 1 else SKIPPED_NOTE,
                               wanted["target_value"] if matched == 1 else None):
                    # Another run finished this repair first; roll back our UPDATE.
                    raise _AlreadyHandled
            counts[state] += 1
        except _AlreadyHandled:
            continue
        except Exception as error:
            counts["failed"] += 1
            with engine.begin() as connection:
                _finish(connection, run, repair, "failed", f"{type(error).__name__}: {error}", None)
    return RepairOutcome(planned=len(plan), **counts)


class _AlreadyHandled(Exception):
    pass


def record_run_repairs(engine: Engine, run: RunInfo, domain: str, *, dry_run: bool, outcome: RepairOutcome) -> None:
    """Put the repair step's figures on the run's `recon.runs` row."""
    with engine.begin() as connection:
        connection.execute(
            sql.query("recon/queries/record_run_repairs.sql"),
            {
                "run_id": run.run_id,
                "domain": domain,
                "dry_run": dry_run,
                "planned": outcome.planned,
                "applied": outcome.applied,
                "skipped": outcome.skipped,
                "failed": outcome.failed,
                "refused": outcome.refused,
            },
        )
