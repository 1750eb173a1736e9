"""What the 5-minute sweep looks at: provisional loans and pending transactions.

Both are written by the app optimistically and only the chain can settle them:
a provisional loan is resolved by the `loan_created` event its submitted
transaction emitted (matched on `txHash`); a pending transaction by what
`getTransaction` says about its hash. Rows younger than the grace period are
in flight and left alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy.engine import Engine

from reconciliation_pipeline.chain.history import ledger_at_or_after, transaction_statuses
from reconciliation_pipeline.chain.reader import ChainReader
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from reconciliation_pipeline.core.findings import concat_findings, findings_frame
from reconciliation_pipeline.core.snapshots import to_exact_ints
from reconciliation_pipeline.defs.lending.events import LOAN_CREATED, events_frame, indexed_creations, topic_filters

LOAN_ENTITY = "loan"
LOAN_ID_PREFIX = "loan_"
TRANSACTION_ENTITY = "transaction"
CHAIN_LOAN_ID = "chain_loan_id"
STATUS = "status"
PENDING = "pending"
MATCH_LOOKBACK = timedelta(hours=1)
"""How far before a provisional loan's creation its loan_created event is looked for (clock skew)."""

SETTLED_STATUS = {"SUCCESS": "succeeded", "FAILED": "failed"}
EXPIRED = "expired"


def _query(engine: Engine, path: str, params: dict[str, object] | None = None) -> pd.DataFrame:
    with engine.connect() as connection:
        result = connection.execute(sql.query(path), params or {})
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)


def provisional_entity_ids(db_loan_ids: pd.Series) -> pd.Series:
    """Entity ids of loans known by their database id (before a chain id exists)."""
    return LOAN_ID_PREFIX + db_loan_ids.astype(str)


# -- provisional loans -------------------------------------------------------


def snapshot_provisional_loans(engine: Engine) -> pd.DataFrame:
    frame = _query(engine, "snapshots/lending/provisional_loans.sql")
    frame["principal"] = to_exact_ints(frame["principal"])
    frame["chain_loan_id"] = to_exact_ints(frame["chain_loan_id"])
    return frame


MATCH_COLUMNS = ("tx_hash", "loan_id", "event_id", "ledger", "match_source")


def _live_creations(reader: ChainReader, contract_id: str, since: datetime, tx_hashes: set[str]) -> pd.DataFrame:
    """loan_created events since `since` (clamped to retention) emitted by the given transactions."""
    start = ledger_at_or_after(reader, since)
    events, _ = reader.get_events(contract_ids=[contract_id], topics=topic_filters((LOAN_CREATED,)), start_ledger=start)
    frame = events_frame(events)
    frame = frame[frame["decode_error"].isna() & frame["tx_hash"].isin(tx_hashes)]
    return frame[["tx_hash", "loan_id", "event_id", "ledger"]]


def _older_than(moments: pd.Series, cutoff: datetime) -> pd.Series:
    return (pd.to_datetime(moments, utc=True) <= pd.Timestamp(cutoff)).astype(bool)


def match_provisional_loans(
    engine: Engine, reader: ChainReader, contract_id: str, loans: pd.DataFrame, *, grace: timedelta, now: datetime
) -> pd.DataFrame:
    """Each provisional loan with the real id its submitted transaction's loan_created event gives.

    Events come from the index (`recon.lending_events`, any age) and from the RPC
    since the oldest provisional loan was created (events not indexed yet). A
    transaction that created more than one loan is ambiguous and never resolved
    automatically.
    """
    waiting = loans[loans["chain_loan_id"].isna() & loans["submitted_tx_hash"].notna()]
    hashes = set(waiting["submitted_tx_hash"])
    found = [pd.DataFrame(columns=list(MATCH_COLUMNS), dtype=object)]
    if hashes:
        found.append(indexed_creations(engine, sorted(hashes)).assign(match_source="indexed"))
        since = min(pd.to_datetime(waiting["created_at"], utc=True)).to_pydatetime() - MATCH_LOOKBACK
        found.append(_live_creations(reader, contract_id, since, hashes).assign(match_source="rpc"))
    creations = pd.concat([f[list(MATCH_COLUMNS)] for f in found], ignore_index=True)
    creations = creations.sort_values("match_source").drop_duplicates("event_id")
    creations["loan_id"] = creations["loan_id"].map(int).astype(object)
    per_tx = creations.groupby("tx_hash").agg(
        candidates=("loan_id", "nunique"),
        real_loan_id=("loan_id", "first"),
        match_event_id=("event_id", "first"),
        match_ledger=("ledger", "first"),
        match_source=("match_source", "first"),
    )
    frame = loans.merge(per_tx, left_on="submitted_tx_hash", right_index=True, how="left")
    frame = frame.astype(object).where(frame.notna(), None)
    frame["candidates"] = to_exact_ints(frame["candidates"]).map(lambda n: n or 0).astype(int)
    frame["real_loan_id"] = to_exact_ints(frame["real_loan_id"].where(frame["candidates"] == 1, None))
    frame["overdue"] = _older_than(frame["created_at"], now - grace)
    return frame


def provisional_findings(frame: pd.DataFrame) -> pd.DataFrame:
    """UNRESOLVED_PROVISIONAL_ID per provisional loan that is resolvable (INFO: a repair
    sets the real id), ambiguous, or past the grace period with no matching event (WARN)."""
    provisional = frame[frame["chain_loan_id"].isna()]
    resolvable = provisional[provisional["real_loan_id"].notna()]
    ambiguous = provisional[provisional["candidates"] > 1]
    unresolved = provisional[provisional["real_loan_id"].isna() & (provisional["candidates"] == 0)
                             & provisional["overdue"]]

    def details(rows: pd.DataFrame, reason: str) -> pd.Series:
        return pd.Series(
            [
                {"submitted_tx_hash": h, "created_at": c.isoformat(), "reason": reason,
                 **({"event_id": e, "ledger": int(g), "matched_in": s} if e is not None else {}),
                 **({"candidate_loans": int(n)} if n > 1 else {})}
                for h, c, e, g, s, n in zip(rows["submitted_tx_hash"], rows["created_at"], rows["match_event_id"],
                                            rows["match_ledger"], rows["match_source"], rows["candidates"],
                                            strict=True)
            ],
            index=rows.index,
            dtype=object,
        )

    parts = []
    for rows, severity, chain_value, reason in (
        (resolvable, Severity.INFO, resolvable["real_loan_id"].map(str), "its transaction's loan_created event names the real id"),
        (ambiguous, Severity.WARN, None, "its transaction emitted several loan_created events"),
        (unresolved, Severity.WARN, None, "no loan_created event from its transaction after the grace period"),
    ):
        parts.append(
            findings_frame(
                entity_type=LOAN_ENTITY,
                entity_id=provisional_entity_ids(rows["db_loan_id"]),
                entity_key=rows["db_loan_id"].astype(object),
                field=CHAIN_LOAN_ID,
                drift_class=DriftClass.UNRESOLVED_PROVISIONAL_ID,
                severity=severity,
                chain_value=chain_value,
                ledger_sequence=rows["match_ledger"],
                details=details(rows, reason),
            )
        )
    return concat_findings(parts)


def provisional_checked(frame: pd.DataFrame) -> pd.DataFrame:
    """Every loan the provisional sweep looked at (resolved rows included, so their incidents close)."""
    return pd.DataFrame({"entity_type": LOAN_ENTITY, "entity_id": provisional_entity_ids(frame["db_loan_id"])})


# -- pending transactions ----------------------------------------------------


def snapshot_pending_transactions(engine: Engine) -> pd.DataFrame:
    frame = _query(engine, "snapshots/lending/pending_transactions.sql")
    frame["amount"] = to_exact_ints(frame["amount"])
    return frame


def check_pending_transactions(
    reader: ChainReader, transactions: pd.DataFrame, *, grace: timedelta, now: datetime
) -> pd.DataFrame:
    """Pending transactions past the grace period, each with its `getTransaction` status
    and the status the database should move to (`settle_to`; None when the chain cannot tell)."""
    frame = transactions.copy()
    frame["overdue"] = ((frame["status"] == PENDING) & _older_than(frame["submitted_at"], now - grace)).astype(bool)
    statuses = transaction_statuses(reader, list(frame.loc[frame["overdue"], "tx_hash"]))
    frame = frame.merge(statuses, on="tx_hash", how="left")
    frame = frame.astype(object).where(frame.notna(), None)
    within_retention = frame["submitted_at"].combine(
        frame["retention_starts_at"], lambda submitted, oldest: oldest is not None and submitted >= oldest
    )
    expired = (frame["rpc_status"] == "NOT_FOUND") & within_retention.astype(bool)
    # Built as a list: `Series.where(..., None)` on a string column writes NaN, not None.
    frame["settle_to"] = pd.Series([SETTLED_STATUS.get(s) for s in frame["rpc_status"]], index=frame.index,
                                   dtype=object)
    frame.loc[expired, "settle_to"] = EXPIRED
    return frame


def pending_findings(frame: pd.DataFrame) -> pd.DataFrame:
    """ORPHANED_PENDING_TX per overdue pending transaction the chain answered for;
    CHAIN_READ_ERROR where getTransaction kept failing."""
    overdue = frame[frame["overdue"].astype(bool)]
    answered = overdue[overdue["rpc_status"].notna()]
    failed = overdue[overdue["read_error"].notna()]
    answered_details = pd.Series(
        [
            {"kind": k, "loan_id": loan, "submitted_at": s.isoformat(), "settle_to": to, "included_in_ledger": ledger,
             **({} if to is not None else {"reason": "NOT_FOUND for a submission older than the RPC's retention: "
                                                     "the chain cannot tell whether it landed"})}
            for k, loan, s, to, ledger in zip(answered["kind"], answered["loan_id"], answered["submitted_at"],
                                              answered["settle_to"], answered["rpc_ledger"], strict=True)
        ],
        index=answered.index,
        dtype=object,
    )
    return concat_findings(
        [
            findings_frame(
                entity_type=TRANSACTION_ENTITY,
                entity_id="tx_" + answered["tx_hash"].astype(str),
                entity_key=answered["tx_hash"].astype(object),
                field=STATUS,
                drift_class=DriftClass.ORPHANED_PENDING_TX,
                severity=Severity.WARN,
                db_value=answered["status"],
                chain_value=answered["rpc_status"],
                ledger_sequence=answered["latest_ledger"],
                details=answered_details,
            ),
            findings_frame(
                entity_type=TRANSACTION_ENTITY,
                entity_id="tx_" + failed["tx_hash"].astype(str),
                entity_key=failed["tx_hash"].astype(object),
                field=WHOLE_ENTITY,
                drift_class=DriftClass.CHAIN_READ_ERROR,
                severity=Severity.WARN,
                details=pd.Series([{"error": e} for e in failed["read_error"]], index=failed.index, dtype=object),
            ),
        ]
    )


def pending_checked(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Transactions this sweep settled its view of, and how many it could not check."""
    readable = frame[frame["read_error"].isna()]
    checked = pd.DataFrame({"entity_type": TRANSACTION_ENTITY, "entity_id": "tx_" + readable["tx_hash"].astype(str)})
    return checked, int(frame["read_error"].notna().sum())
