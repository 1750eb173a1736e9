"""What is truly lending-specific: the event index, provisional ids, pending transactions, inserts.

- `lending_events` indexes the contract's events of each UTC day into
  `recon.lending_events`; it is how the chain side learns of loans and
  providers the database never recorded.
- `provisional_loans` matches each provisional loan to the real id its
  submitted transaction's `loan_created` event gives; `pending_lending_transactions`
  asks `getTransaction` what became of each overdue pending transaction.
- Their findings, the chain loans a provisional row already explains, and the
  repairs they call for (real ids, settled transactions, loans the app never
  wrote inserted from chain state) are the domain's hooks.

Every repair is planned the same way as the compared fields' (observed value,
target value, idempotency key), so `core.repairs` applies all of them with
compare-and-swap and an audit row. Nothing is ever written on chain.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from reconciliation_pipeline.chain.history import ledger_window
from reconciliation_pipeline.chain.reader import RetentionWindowError, RpcReadError
from reconciliation_pipeline.core import repairs
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass
from reconciliation_pipeline.core.findings import concat_findings
from reconciliation_pipeline.core.history import record_replay
from reconciliation_pipeline.core.json_text import to_json
from reconciliation_pipeline.core.metadata import frame_metadata, markdown_table
from reconciliation_pipeline.core.results import Checked, DomainInputs, ExtraFindings, StepContext, StepResult
from reconciliation_pipeline.core.snapshots import READ_OK
from reconciliation_pipeline.core.spec import Step
from reconciliation_pipeline.defs.lending import sweep
from reconciliation_pipeline.defs.lending.events import (
    EVENT_TYPES,
    created_loans,
    events_frame,
    read_window_events,
    replace_event_partitions,
)

DOMAIN = "lending"
LENDING_EVENTS_NAME = "lending_events"
LOANS = "loans"
EVENTS_CHECK = "events_follow_layout"
RESOLVE_PROVISIONAL_QUERY = "repairs/lending/resolve_provisional_id.sql"
INSERT_LOAN_QUERY = "repairs/lending/insert_loan.sql"
SETTLE_TRANSACTION_QUERY = "repairs/lending/transaction_status.sql"


class GraceConfig(dg.Config):
    """Rows younger than this are in flight: the app may still settle them itself."""

    grace_minutes: int = 30


# -- steps ------------------------------------------------------------------------


def index_events(ctx: StepContext, inputs: DomainInputs) -> StepResult:
    """The run's days' events (a run over a range reads the range in one pass), replacing those
    days' rows in `recon.lending_events`. Days before getEvents's window are replayed from
    getLedgers metadata when the RPC serves them; a day neither serves is refused, naming both
    windows, never indexed as an empty day."""
    window = ctx.partition_window
    assert window is not None and ctx.partition_keys
    days = list(ctx.partition_keys)
    try:
        with ctx.reader() as reader:
            ledgers, searches = ledger_window(reader, window.start, window.end)
            read = read_window_events(reader, ctx.contracts.lending_contract_id, ledgers,
                                      ctx.settings.replay_max_ledgers)
    except (RetentionWindowError, RpcReadError) as error:
        raise dg.Failure(description=str(error)) from error
    record_replay(ctx.engine, DOMAIN, LENDING_EVENTS_NAME, ctx.run.run_id, days, read)
    frame = events_frame(read.events)
    replace_event_partitions(ctx.engine, ctx.run.run_id, days, frame)
    undecodable = frame[frame["decode_error"].notna()]
    counts = frame["event_type"].value_counts()
    ctx.log.info(f"lending events {days[0]}..{days[-1]}: ledgers {ledgers.start_ledger}..{ledgers.end_ledger - 1}, "
                 f"{len(frame)} events ({len(undecodable)} undecodable) from {read.source}")
    replayed = read.replay
    return StepResult(
        value=None,
        metadata={
            **frame_metadata(frame),
            "days": len(days),
            "start_ledger": ledgers.start_ledger,
            "end_ledger_exclusive": ledgers.end_ledger,
            "oldest_ledger_available": ledgers.oldest_ledger,
            "window_complete": ledgers.complete,
            "ledger_search_requests": searches,
            "event_source": read.source,
            "getevents_oldest_ledger": read.events_oldest,
            "replay_ledgers": replayed.ledgers if replayed is not None else 0,
            "replay_bytes": replayed.bytes_read if replayed is not None else 0,
            "replay_problems": len(replayed.problems) if replayed is not None else 0,
            **{f"events/{name}": int(counts.get(name, 0)) for name in EVENT_TYPES},
        },
        checks=(dg.AssetCheckResult(
            check_name=EVENTS_CHECK,
            passed=undecodable.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"undecodable": len(undecodable),
                      "sample": markdown_table(undecodable[["event_id", "event_type", "decode_error"]],
                                               "Every event decodes.")},
        ),),
    )


def match_provisional(ctx: StepContext, inputs: DomainInputs) -> StepResult:
    """Each provisional loan with the real id its transaction's loan_created event gives, if any."""
    grace = ctx.config.grace_minutes
    loans = sweep.snapshot_provisional_loans(ctx.engine)
    with ctx.reader() as reader:
        frame = sweep.match_provisional_loans(ctx.engine, reader, ctx.contracts.lending_contract_id, loans,
                                              grace=timedelta(minutes=grace), now=datetime.now(UTC))
    waiting = frame[frame["chain_loan_id"].isna()]
    return StepResult(value=frame, metadata={
        **frame_metadata(frame),
        "provisional": len(waiting),
        "resolvable": int(waiting["real_loan_id"].notna().sum()),
        "unresolved_past_grace": int((waiting["real_loan_id"].isna() & waiting["overdue"]).sum()),
        "grace_minutes": grace,
    })


def settle_pending(ctx: StepContext, inputs: DomainInputs) -> StepResult:
    """Each pending transaction past the grace period with what `getTransaction` says of it."""
    grace = ctx.config.grace_minutes
    transactions = sweep.snapshot_pending_transactions(ctx.engine)
    with ctx.reader() as reader:
        frame = sweep.check_pending_transactions(reader, transactions, grace=timedelta(minutes=grace),
                                                 now=datetime.now(UTC))
    overdue = frame[frame["overdue"].astype(bool)]
    return StepResult(value=frame, metadata={
        **frame_metadata(frame),
        "pending": int((frame["status"] == sweep.PENDING).sum()),
        "past_grace": len(overdue),
        "get_transaction_requests": len(overdue),
        **{f"chain_says/{s}": int((overdue["rpc_status"] == s).sum()) for s in ("SUCCESS", "FAILED", "NOT_FOUND")},
        "unreadable": int(overdue["read_error"].notna().sum()),
        "grace_minutes": grace,
    })


LENDING_EVENTS = Step(
    name=LENDING_EVENTS_NAME,
    run=index_events,
    kinds=frozenset({"stellar", "postgres"}),
    checks=((EVENTS_CHECK, "every indexed event follows its CONTRACTS.md §2 layout"),),
    value=False,
    description="The lending pool's contract events of each UTC day: loans created, repaid and closed, liquidity "
    "deposited and withdrawn, with the transaction that emitted each. Stored in `recon.lending_events`; re-running "
    "a day replaces its rows. Days older than getEvents's window are replayed from getLedgers metadata (its "
    "metadata says which: `event_source`); a day neither serves is refused, naming both windows, rather than "
    "indexed as an empty day.",
)
PROVISIONAL_LOANS = Step(
    name="provisional_loans",
    run=match_provisional,
    partitioned=False,
    config=GraceConfig,
    kinds=frozenset({"postgres", "stellar", "pandas"}),
    description="Loans the app stored under a provisional id, each with the real on-chain id that the "
    "`loan_created` event of its submitted transaction gives (from the event index and from the RPC's recent "
    "ledgers), or none yet. Older than the grace period and still unmatched means the loan most likely never "
    "reached the chain.",
)
PENDING_TRANSACTIONS = Step(
    name="pending_lending_transactions",
    run=settle_pending,
    partitioned=False,
    config=GraceConfig,
    kinds=frozenset({"postgres", "stellar", "pandas"}),
    description="Lending transactions the app still records as pending, each one past the grace period with what "
    "`getTransaction` says of its hash (SUCCESS, FAILED or NOT_FOUND) and the status the app should record "
    "(succeeded, failed, expired).",
)


# -- hooks ------------------------------------------------------------------------


def sweep_findings(ctx: StepContext, inputs: DomainInputs) -> ExtraFindings:
    """Provisional ids and pending transactions; with the nightly loans, the loans known by their
    database id too (so a provisional loan's incident resolves once it has its chain id)."""
    provisional = inputs.steps[PROVISIONAL_LOANS.name]
    pending = inputs.steps[PENDING_TRANSACTIONS.name]
    pending_seen, unreadable = sweep.pending_checked(pending)
    checked = [Checked(sweep.provisional_checked(provisional)), Checked(pending_seen, unreadable)]
    if LOANS in inputs.sources:
        checked.append(Checked.of(sweep.LOAN_ENTITY,
                                  sweep.provisional_entity_ids(inputs.sources[LOANS].frame["db_loan_id"])))
    ledgers = pending["latest_ledger"].dropna()
    return ExtraFindings(
        findings=concat_findings([sweep.provisional_findings(provisional), sweep.pending_findings(pending)]),
        checked=Checked.combine(checked),
        ledger_sequence=int(max(ledgers)) if len(ledgers) else None,
    )


def claimed_chain_loans(entity: str, inputs: DomainInputs) -> pd.Series:
    """A chain loan a provisional row is waiting for is that row's loan, not a missing one."""
    if entity != LOANS:
        return pd.Series([], dtype=object)
    provisional = inputs.steps[PROVISIONAL_LOANS.name]
    claimed = set(provisional.loc[provisional["chain_loan_id"].isna(), "real_loan_id"].dropna())
    known = set(inputs.sources[LOANS].frame["loan_id"].map(int))
    return pd.Series(sorted(claimed - known), dtype="uint64")


def _of_class(findings: pd.DataFrame, entity_type: str, drift_class: DriftClass) -> pd.DataFrame:
    return findings[(findings["entity_type"] == entity_type) & (findings["drift_class"] == drift_class.value)]


def provisional_repairs(findings: pd.DataFrame) -> pd.DataFrame:
    """Resolvable provisional loans: record the real chain id (observed: the matched submitted hash)."""
    found = _of_class(findings, sweep.LOAN_ENTITY, DriftClass.UNRESOLVED_PROVISIONAL_ID)
    found = found[(found["field"] == sweep.CHAIN_LOAN_ID) & found["chain_value"].notna()]
    return repairs.plan_rows(DOMAIN, sweep.LOAN_ENTITY, found["entity_id"], found["entity_key"], sweep.CHAIN_LOAN_ID,
                             RESOLVE_PROVISIONAL_QUERY, found["details"].map(lambda d: d["submitted_tx_hash"]),
                             found["chain_value"])


def transaction_repairs(findings: pd.DataFrame) -> pd.DataFrame:
    """Orphaned pending transactions the chain can settle: succeeded, failed or expired."""
    found = _of_class(findings, sweep.TRANSACTION_ENTITY, DriftClass.ORPHANED_PENDING_TX)
    settle_to = found["details"].map(lambda d: d.get("settle_to"))
    found, settle_to = found[settle_to.notna()], settle_to[settle_to.notna()]
    return repairs.plan_rows(DOMAIN, sweep.TRANSACTION_ENTITY, found["entity_id"], found["entity_key"], sweep.STATUS,
                             SETTLE_TRANSACTION_QUERY, found["db_value"], settle_to)


def _loan_json(rows: pd.DataFrame) -> pd.Series:
    """The chain's loan as the JSON the insert repair reads (amounts as exact decimal text)."""
    return pd.Series(
        [
            to_json(
                {
                    "borrower": borrower,
                    "principal": str(principal),
                    "outstanding": str(outstanding),
                    "status": status,
                    "created_tx_hash": tx_hash if isinstance(tx_hash, str) else None,
                    "created_at": None if created_at is None or created_at != created_at
                    else pd.Timestamp(created_at).isoformat(),
                },
                sort_keys=True,
            )
            for borrower, principal, outstanding, status, tx_hash, created_at in zip(
                rows["borrower"], rows["principal"], rows["outstanding"], rows["status"],
                rows["created_tx_hash"], rows["created_at"], strict=True,
            )
        ],
        index=rows.index,
        dtype=object,
    )


def missing_loan_repairs(ctx: StepContext, findings: pd.DataFrame, chain_loans: pd.DataFrame) -> pd.DataFrame:
    """Loans on chain with no row: insert them from the chain's decoded entry and their creating event."""
    found = _of_class(findings, sweep.LOAN_ENTITY, DriftClass.MISSING_IN_DB)
    found = found[found["field"] == WHOLE_ENTITY]
    chain = chain_loans[chain_loans["read_status"] == READ_OK].assign(
        entity_key=lambda f: f["loan_id"].astype(str))
    rows = found[["entity_id", "entity_key"]].merge(chain, on="entity_key", how="inner")
    created = created_loans(ctx.engine, [int(k) for k in rows["loan_id"]]).assign(
        entity_key=lambda f: f["loan_id"].astype(str)).drop(columns="loan_id")
    rows = rows.merge(created, on="entity_key", how="left")
    return repairs.plan_rows(DOMAIN, sweep.LOAN_ENTITY, rows["entity_id"], rows["entity_key"], WHOLE_ENTITY,
                             INSERT_LOAN_QUERY, pd.Series([None] * len(rows), index=rows.index, dtype=object),
                             _loan_json(rows))


def repairs_plan(ctx: StepContext, inputs: DomainInputs, findings: pd.DataFrame) -> pd.DataFrame:
    """What lending repairs beyond the compared fields, in the order they are applied."""
    plans = [provisional_repairs(findings), transaction_repairs(findings)]
    if LOANS in inputs.chains:
        plans.append(missing_loan_repairs(ctx, findings, inputs.chains[LOANS].frame))
    plans = [p for p in plans if len(p)]
    return pd.concat(plans, ignore_index=True) if plans else repairs.empty_plan()
