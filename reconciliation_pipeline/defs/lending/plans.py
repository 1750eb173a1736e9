"""Lending's repair plans, chain → database only.

Field repairs (principal, outstanding, status, position amounts, reputation
score) come from the generic planner, one spec at a time. The rest is
lending-specific but planned the same way (observed value, target value,
idempotency key) so `core.repairs` applies all of them with compare-and-swap
and an audit row:

- a provisional loan's real id, from its transaction's loan_created event;
- a loan that exists on chain but has no row, inserted from the chain's state;
- an orphaned pending transaction, settled to succeeded, failed or expired.
"""

from __future__ import annotations

import json

import pandas as pd

from reconciliation_pipeline.core import repairs
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass
from reconciliation_pipeline.core.snapshots import READ_OK
from reconciliation_pipeline.defs.lending.spec import DOMAIN, LENDING_SPECS, LOANS_SPEC
from reconciliation_pipeline.defs.lending.sweep import CHAIN_LOAN_ID, STATUS, TRANSACTION_ENTITY

RESOLVE_PROVISIONAL_QUERY = "repairs/lending/resolve_provisional_id.sql"
INSERT_LOAN_QUERY = "repairs/lending/insert_loan.sql"
SETTLE_TRANSACTION_QUERY = "repairs/lending/transaction_status.sql"


def _plan(
    entity_type: str,
    entity_id: pd.Series,
    entity_key: pd.Series,
    field: str,
    query: str,
    observed: pd.Series,
    target: pd.Series,
) -> pd.DataFrame:
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
    plan.insert(
        0,
        "idempotency_key",
        [
            repairs.idempotency_key(DOMAIN, entity_type, key, field, "" if seen is None else seen, wanted)
            for key, seen, wanted in zip(plan["entity_key"], plan["observed_value"], plan["target_value"], strict=True)
        ],
    )
    return plan[list(repairs.PLAN_COLUMNS)]


def _of_class(findings: pd.DataFrame, entity_type: str, drift_class: DriftClass) -> pd.DataFrame:
    return findings[(findings["entity_type"] == entity_type) & (findings["drift_class"] == drift_class.value)]


def field_repairs(findings: pd.DataFrame) -> pd.DataFrame:
    """Stale statuses and amounts of loans, positions and reputation, set to the chain's values."""
    return pd.concat(
        [repairs.plan_repairs(spec, findings[findings["entity_type"] == spec.entity_type]) for spec in LENDING_SPECS],
        ignore_index=True,
    )


def provisional_repairs(findings: pd.DataFrame) -> pd.DataFrame:
    """Resolvable provisional loans: record the real chain id (observed: the matched submitted hash)."""
    found = _of_class(findings, LOANS_SPEC.entity_type, DriftClass.UNRESOLVED_PROVISIONAL_ID)
    found = found[(found["field"] == CHAIN_LOAN_ID) & found["chain_value"].notna()]
    return _plan(
        LOANS_SPEC.entity_type,
        found["entity_id"],
        found["entity_key"],
        CHAIN_LOAN_ID,
        RESOLVE_PROVISIONAL_QUERY,
        found["details"].map(lambda d: d["submitted_tx_hash"]),
        found["chain_value"],
    )


def transaction_repairs(findings: pd.DataFrame) -> pd.DataFrame:
    """Orphaned pending transactions the chain can settle: succeeded, failed or expired."""
    found = _of_class(findings, TRANSACTION_ENTITY, DriftClass.ORPHANED_PENDING_TX)
    settle_to = found["details"].map(lambda d: d.get("settle_to"))
    found, settle_to = found[settle_to.notna()], settle_to[settle_to.notna()]
    return _plan(
        TRANSACTION_ENTITY, found["entity_id"], found["entity_key"], STATUS, SETTLE_TRANSACTION_QUERY,
        found["db_value"], settle_to,
    )


def _loan_json(rows: pd.DataFrame) -> pd.Series:
    """The chain's loan as the JSON the insert repair reads (amounts as exact decimal text)."""
    return pd.Series(
        [
            json.dumps(
                {
                    "borrower": borrower,
                    "principal": str(principal),
                    "outstanding": str(outstanding),
                    "status": status,
                    "created_tx_hash": tx_hash,
                    "created_at": None if created_at is None else pd.Timestamp(created_at).isoformat(),
                },
                sort_keys=True,
            )
            for borrower, principal, outstanding, status, tx_hash, created_at in zip(
                rows["borrower"], rows["principal"], rows["outstanding"], rows["status"],
                rows["created_tx_hash"], rows["created_closed_at"], strict=True,
            )
        ],
        index=rows.index,
        dtype=object,
    )


def missing_loan_repairs(findings: pd.DataFrame, chain_loans: pd.DataFrame) -> pd.DataFrame:
    """Loans on chain with no row: insert them from the chain's decoded entry."""
    found = _of_class(findings, LOANS_SPEC.entity_type, DriftClass.MISSING_IN_DB)
    found = found[found["field"] == WHOLE_ENTITY]
    chain = chain_loans[chain_loans["read_status"] == READ_OK].assign(
        entity_key=lambda f: f[LOANS_SPEC.key_column].astype(str)
    )
    rows = found[["entity_id", "entity_key"]].merge(chain, on="entity_key", how="inner")
    return _plan(
        LOANS_SPEC.entity_type,
        rows["entity_id"],
        rows["entity_key"],
        WHOLE_ENTITY,
        INSERT_LOAN_QUERY,
        pd.Series([None] * len(rows), index=rows.index, dtype=object),
        _loan_json(rows),
    )


def sweep_repairs(findings: pd.DataFrame) -> pd.DataFrame:
    """What the 5-minute sweep repairs: provisional ids and orphaned transactions."""
    return pd.concat([provisional_repairs(findings), transaction_repairs(findings)], ignore_index=True)


def nightly_repairs(findings: pd.DataFrame, chain_loans: pd.DataFrame) -> pd.DataFrame:
    """Everything lending repairs, in the order they are applied."""
    return pd.concat(
        [sweep_repairs(findings), missing_loan_repairs(findings, chain_loans), field_repairs(findings)],
        ignore_index=True,
    )
