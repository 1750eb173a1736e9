"""Lending assets: the day's contract events, both sides' snapshots of loans,
liquidity positions and reputation, the provisional-id and pending-transaction
sweeps, their diff and their repairs.

Two groups. `lending` is the nightly, daily-partitioned reconciliation (the
two sweep snapshots are unpartitioned members of it: pending-ness is about
now, not about a day). `lending_sweep` persists and repairs what the sweep
snapshots find, every few minutes, without the nightly's chain reads.
"""


from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from reconciliation_pipeline.chain.addresses import valid_address_mask
from reconciliation_pipeline.chain.reader import RetentionWindowError
from reconciliation_pipeline.core.asset_support import (
    DATABASE,
    RepairConfig,
    batch_progress,
    invariants_check,
    markdown_table,
    repair_step,
    run_info,
)
from reconciliation_pipeline.core.diff import address_findings, diff_snapshots, invariant_findings
from reconciliation_pipeline.core.drift_store import persist_domain_run
from reconciliation_pipeline.core.findings import concat_findings
from reconciliation_pipeline.core.metadata import frame_metadata, persisted_run_metadata
from reconciliation_pipeline.core.snapshots import READ_ERROR, decoded_rows, snapshot_chain, snapshot_db
from reconciliation_pipeline.core.spec import KeyKind, ReconSpec
from reconciliation_pipeline.defs.lending import plans, sweep
from reconciliation_pipeline.defs.lending.events import (
    EVENT_TYPES,
    created_loans,
    event_providers,
    events_frame,
    read_window_events,
    replace_event_partitions,
)
from reconciliation_pipeline.defs.lending.rpc import ledger_window
from reconciliation_pipeline.defs.lending.spec import DOMAIN, LOANS_SPEC, POSITIONS_SPEC, REPUTATION_SPEC
from reconciliation_pipeline.partitions import daily_partitions
from reconciliation_pipeline.resources import (
    PostgresResource,
    ReconSettingsResource,
    SorobanRpcResource,
    StellarContractsResource,
)

GROUP = "lending"
SWEEP_GROUP = "lending_sweep"
EVENTS_CHECK = "events_follow_layout"
INVARIANT_CHECKS = {
    LOANS_SPEC.entity_type: "loan_invariants",
    POSITIONS_SPEC.entity_type: "position_invariants",
    REPUTATION_SPEC.entity_type: "reputation_invariants",
}
INVARIANT_TEXT = {
    LOANS_SPEC.entity_type: "principal >= 0, outstanding >= 0, exact integers, known status",
    POSITIONS_SPEC.entity_type: "deposited >= 0, shares >= 0, exact integers",
    REPUTATION_SPEC.entity_type: "score is an integer within u32",
}


class GraceConfig(dg.Config):
    """Rows younger than this are in flight: the app may still settle them itself."""

    grace_minutes: int = 30








def _invariants_check(spec: ReconSpec, frame: pd.DataFrame, side: str) -> dg.AssetCheckResult:
    model = spec.db_invariants if side == DATABASE else spec.chain_invariants
    assert model is not None
    return invariants_check(INVARIANT_CHECKS[spec.entity_type], spec, model, frame, side,
                            f"All rows satisfy: {INVARIANT_TEXT[spec.entity_type]}.")


def _check_spec(spec: ReconSpec, asset: str, side: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        INVARIANT_CHECKS[spec.entity_type], asset=asset, description=f"{side}: {INVARIANT_TEXT[spec.entity_type]}"
    )


# -- events ------------------------------------------------------------------


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_partitions,
    kinds={"stellar", "postgres"},
    check_specs=[dg.AssetCheckSpec(EVENTS_CHECK, asset="lending_events",
                                   description="every indexed event follows its CONTRACTS.md §2 layout")],
)
def lending_events(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
) -> dg.MaterializeResult:
    """The lending pool's contract events of each UTC day: loans created, repaid and
    closed, liquidity deposited and withdrawn, with the transaction that emitted each.
    Stored in `recon.lending_events`; re-running a day replaces its rows (a run over a
    range of days reads the range in one pass). A day older than the RPC's retention is refused,
    naming the oldest ledger available, rather than indexed as an empty day."""
    window = context.partition_time_window
    days = list(context.partition_keys)
    try:
        with soroban_rpc.reader() as reader:
            ledgers, searches = ledger_window(reader, window.start, window.end)
            events = read_window_events(reader, contracts.lending_contract_id, ledgers)
    except RetentionWindowError as error:
        raise dg.Failure(description=str(error)) from error
    frame = events_frame(events)
    replace_event_partitions(postgres.engine, context.run_id, days, frame)
    undecodable = frame[frame["decode_error"].notna()]
    counts = frame["event_type"].value_counts()
    context.log.info(
        f"lending events {days[0]}..{days[-1]}: ledgers {ledgers.start_ledger}..{ledgers.end_ledger - 1}, "
        f"{len(frame)} events ({len(undecodable)} undecodable)"
    )
    return dg.MaterializeResult(
        metadata={
            **frame_metadata(frame),
            "days": len(days),
            "start_ledger": ledgers.start_ledger,
            "end_ledger_exclusive": ledgers.end_ledger,
            "oldest_ledger_available": ledgers.oldest_ledger,
            "window_complete": ledgers.complete,
            "ledger_search_requests": searches,
            **{f"events/{name}": int(counts.get(name, 0)) for name in EVENT_TYPES},
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=EVENTS_CHECK,
                passed=undecodable.empty,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "undecodable": len(undecodable),
                    "sample": markdown_table(undecodable[["event_id", "event_type", "decode_error"]],
                                        "Every event decodes."),
                },
            )
        ],
    )


# -- database snapshots ------------------------------------------------------


def _db_snapshot(context: dg.AssetExecutionContext, postgres: PostgresResource, spec: ReconSpec) -> dg.MaterializeResult:
    snapshot = snapshot_db(postgres.engine, spec, {"window_end": context.partition_time_window.end})
    frame = snapshot.frame
    frame.attrs["snapshot_at"] = snapshot.taken_at.isoformat()
    valid = frame
    if spec.layout.key_kind is KeyKind.ADDRESS:
        valid = frame[valid_address_mask(frame[spec.key_column])]
    return dg.MaterializeResult(
        value=frame,
        metadata={**frame_metadata(frame), "snapshot_at": snapshot.taken_at.isoformat()},
        check_results=[_invariants_check(spec, valid, "database")],
    )


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres", "pandas"},
          check_specs=[_check_spec(LOANS_SPEC, "db_loans", "database")])
def db_loans(context: dg.AssetExecutionContext, postgres: PostgresResource):  # noqa: ANN201 - see below
    """Loans as the lending app's database records them once they carry their on-chain id,
    one row per loan that existed at the end of the partition's day, with the hash of the
    transaction the app submitted. Amounts are exact integers in base units."""
    # No return annotation: with check_specs Dagster reads one as the type of every output.
    return _db_snapshot(context, postgres, LOANS_SPEC)


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres", "pandas"},
          check_specs=[_check_spec(POSITIONS_SPEC, "db_liquidity_positions", "database")])
def db_liquidity_positions(context: dg.AssetExecutionContext, postgres: PostgresResource):  # noqa: ANN201
    """Each liquidity provider's deposit and pool shares as the app's database records them."""
    return _db_snapshot(context, postgres, POSITIONS_SPEC)


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres", "pandas"},
          check_specs=[_check_spec(REPUTATION_SPEC, "db_reputation", "database")])
def db_reputation(context: dg.AssetExecutionContext, postgres: PostgresResource):  # noqa: ANN201
    """Each borrower's reputation score as the app's database records it."""
    return _db_snapshot(context, postgres, REPUTATION_SPEC)


# -- chain snapshots ---------------------------------------------------------


def _chain_snapshot(
    context: dg.AssetExecutionContext,
    soroban_rpc: SorobanRpcResource,
    contract_id: str,
    spec: ReconSpec,
    keys: list[object],
) -> pd.DataFrame:
    with soroban_rpc.reader() as reader:
        return snapshot_chain(reader, spec, contract_id, keys, progress=batch_progress(context, spec.entity_type))


def _chain_result(spec: ReconSpec, frame: pd.DataFrame, discovered: int) -> dg.MaterializeResult:
    statuses = frame["read_status"].value_counts()
    return dg.MaterializeResult(
        value=frame,
        metadata={
            **frame_metadata(frame),
            "ledger_sequence": frame.attrs.get("ledger_sequence"),
            "rpc_requests": frame.attrs.get("rpc_requests", 0),
            "failed_batches": frame.attrs.get("failed_batches", 0),
            "discovered_from_events": discovered,
            "entries_ok": int(statuses.get("ok", 0)),
            "entries_missing": int(statuses.get("missing", 0)),
            "entries_unreadable": int(statuses.get("error", 0)),
        },
        check_results=[_invariants_check(spec, decoded_rows(frame), "chain")],
    )


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"stellar", "pandas"}, deps=[lending_events],
          check_specs=[_check_spec(LOANS_SPEC, "chain_loans", "chain")])
def chain_loans(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    db_loans: pd.DataFrame,
):  # noqa: ANN201
    """The lending contract's `Loan(u64)` entries for every loan the database knows plus
    every loan an indexed `loan_created` event announced before the partition's end (how
    loans the app never recorded are found), with the creating transaction when known.
    Read in batches of 200; unreadable entries keep their raw payload."""
    created = created_loans(postgres.engine, context.partition_time_window.end)
    ids = [*db_loans["loan_id"].map(int), *created["loan_id"]]
    frame = _chain_snapshot(context, soroban_rpc, contracts.lending_contract_id, LOANS_SPEC, ids)
    by_id = created.set_index("loan_id")
    frame["created_tx_hash"] = frame["loan_id"].map(by_id["created_tx_hash"].to_dict()).astype(object)
    frame["created_closed_at"] = frame["loan_id"].map(by_id["created_at"].to_dict()).astype(object)
    frame[["created_tx_hash", "created_closed_at"]] = frame[["created_tx_hash", "created_closed_at"]].where(
        frame[["created_tx_hash", "created_closed_at"]].notna(), None
    )
    return _chain_result(LOANS_SPEC, frame, len(set(created["loan_id"]) - set(db_loans["loan_id"].map(int))))


def _valid_keys(frame: pd.DataFrame, column: str) -> list[str]:
    return list(frame.loc[valid_address_mask(frame[column]), column])


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"stellar", "pandas"}, deps=[lending_events],
          check_specs=[_check_spec(POSITIONS_SPEC, "chain_liquidity_positions", "chain")])
def chain_liquidity_positions(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    db_liquidity_positions: pd.DataFrame,
):  # noqa: ANN201
    """The lending contract's `Position(Address)` entries for every provider the database
    knows plus every provider an indexed deposit or withdraw event named."""
    known = _valid_keys(db_liquidity_positions, "provider")
    from_events = event_providers(postgres.engine, context.partition_time_window.end)
    frame = _chain_snapshot(context, soroban_rpc, contracts.lending_contract_id, POSITIONS_SPEC,
                            [*known, *from_events])
    return _chain_result(POSITIONS_SPEC, frame, len(set(from_events) - set(known)))


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"stellar", "pandas"}, deps=[lending_events],
          check_specs=[_check_spec(REPUTATION_SPEC, "chain_reputation", "chain")])
def chain_reputation(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    db_reputation: pd.DataFrame,
):  # noqa: ANN201
    """The lending contract's `Reputation(Address)` scores for every address the database
    scores plus every borrower an indexed `loan_created` event named."""
    known = _valid_keys(db_reputation, "address")
    borrowers = list(dict.fromkeys(created_loans(postgres.engine, context.partition_time_window.end)["borrower"]))
    frame = _chain_snapshot(context, soroban_rpc, contracts.lending_contract_id, REPUTATION_SPEC, [*known, *borrowers])
    return _chain_result(REPUTATION_SPEC, frame, len(set(borrowers) - set(known)))


# -- the sweep's snapshots (unpartitioned: they are about now) ---------------


@dg.asset(group_name=GROUP, kinds={"postgres", "stellar", "pandas"})
def provisional_loans(
    context: dg.AssetExecutionContext,
    config: GraceConfig,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
) -> pd.DataFrame:
    """Loans the app stored under a provisional id, each with the real on-chain id that
    the `loan_created` event of its submitted transaction gives (from the event index and
    from the RPC's recent ledgers), or none yet. Older than the grace period and still
    unmatched means the loan most likely never reached the chain."""
    now = datetime.now(UTC)
    loans = sweep.snapshot_provisional_loans(postgres.engine)
    with soroban_rpc.reader() as reader:
        frame = sweep.match_provisional_loans(
            postgres.engine, reader, contracts.lending_contract_id, loans,
            grace=timedelta(minutes=config.grace_minutes), now=now,
        )
    waiting = frame[frame["chain_loan_id"].isna()]
    context.add_output_metadata(
        {
            **frame_metadata(frame),
            "provisional": len(waiting),
            "resolvable": int(waiting["real_loan_id"].notna().sum()),
            "unresolved_past_grace": int((waiting["real_loan_id"].isna() & waiting["overdue"]).sum()),
            "grace_minutes": config.grace_minutes,
        }
    )
    return frame


@dg.asset(group_name=GROUP, kinds={"postgres", "stellar", "pandas"})
def pending_lending_transactions(
    context: dg.AssetExecutionContext,
    config: GraceConfig,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
) -> pd.DataFrame:
    """Lending transactions the app still records as pending, each one past the grace
    period with what `getTransaction` says of its hash (SUCCESS, FAILED or NOT_FOUND) and
    the status the app should record (succeeded, failed, expired)."""
    now = datetime.now(UTC)
    transactions = sweep.snapshot_pending_transactions(postgres.engine)
    with soroban_rpc.reader() as reader:
        frame = sweep.check_pending_transactions(
            reader, transactions, grace=timedelta(minutes=config.grace_minutes), now=now
        )
    overdue = frame[frame["overdue"].astype(bool)]
    context.add_output_metadata(
        {
            **frame_metadata(frame),
            "pending": int((frame["status"] == sweep.PENDING).sum()),
            "past_grace": len(overdue),
            "get_transaction_requests": len(overdue),
            **{f"chain_says/{s}": int((overdue["rpc_status"] == s).sum()) for s in ("SUCCESS", "FAILED", "NOT_FOUND")},
            "unreadable": int(overdue["read_error"].notna().sum()),
            "grace_minutes": config.grace_minutes,
        }
    )
    return frame


# -- diff and persist --------------------------------------------------------


def _entity_diff(spec: ReconSpec, db: pd.DataFrame, chain: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Findings, checked entities and unchecked count for one entity type.

    Database rows keyed by an invalid address cannot be read on chain: they are
    INVALID_ADDRESS findings only, never MISSING_ON_CHAIN.
    """
    assert spec.db_invariants is not None and spec.chain_invariants is not None
    parts = []
    if spec.layout.key_kind is KeyKind.ADDRESS:
        valid = valid_address_mask(db[spec.key_column])
        invalid_found, _ = address_findings(spec, db[~valid])
        parts.append(invalid_found)
        db = db[valid]
    parts += [
        diff_snapshots(spec, db, chain),
        invariant_findings(spec, spec.db_invariants, db, side="database", severity=spec.db_invariant_severity),
        invariant_findings(spec, spec.chain_invariants, decoded_rows(chain), side="chain",
                           severity=spec.chain_invariant_severity),
    ]
    unreadable = chain.loc[chain["read_status"] == READ_ERROR, spec.key_column]
    keys = pd.Index(db[spec.key_column]).union(pd.Index(chain[spec.key_column])).difference(pd.Index(unreadable))
    checked = pd.DataFrame({"entity_type": spec.entity_type, "entity_id": spec.entity_ids(pd.Series(keys, dtype=object))})
    return concat_findings(parts), checked, len(unreadable)


def _persist(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    findings: pd.DataFrame,
    checked: pd.DataFrame,
    unchecked: int,
    *,
    ledger_sequence: int | None,
    snapshot_at: str | None,
    started_at: datetime,
) -> None:
    summary = persist_domain_run(
        postgres.engine,
        run_info(context),
        DOMAIN,
        findings,
        checked=checked.drop_duplicates(),
        unchecked_count=unchecked,
        ledger_sequence=ledger_sequence,
        db_snapshot_at=datetime.fromisoformat(snapshot_at) if snapshot_at else None,
        started_at=started_at,
        policy=recon_settings.incident_policy(),
    )
    context.log.info(
        f"lending: {summary.findings} findings ({summary.status}); incidents confirmed {summary.confirmed}, "
        f"resolved {summary.resolved}"
    )
    context.add_output_metadata(
        {
            **persisted_run_metadata(findings, summary, len(checked), unchecked),
            "ledger_sequence": ledger_sequence,
        }
    )


def _latest_ledger(*frames: pd.DataFrame) -> int | None:
    ledgers = [f.attrs.get("ledger_sequence") for f in frames if f.attrs.get("ledger_sequence") is not None]
    return max(ledgers) if ledgers else None


def _sweep_findings(provisional: pd.DataFrame, pending: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    pending_seen, unreadable = sweep.pending_checked(pending)
    findings = concat_findings([sweep.provisional_findings(provisional), sweep.pending_findings(pending)])
    return findings, pd.concat([sweep.provisional_checked(provisional), pending_seen], ignore_index=True), unreadable


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres", "pandas"})
def lending_discrepancies(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    db_loans: pd.DataFrame,
    chain_loans: pd.DataFrame,
    db_liquidity_positions: pd.DataFrame,
    chain_liquidity_positions: pd.DataFrame,
    db_reputation: pd.DataFrame,
    chain_reputation: pd.DataFrame,
    provisional_loans: pd.DataFrame,
    pending_lending_transactions: pd.DataFrame,
) -> pd.DataFrame:
    """Every disagreement between the lending app's tables and the lending contract, typed
    by drift class: loans, positions and scores that differ or exist on one side only,
    provisional loan ids still unresolved, and pending transactions the chain already
    settled or never saw. Persisted to `recon.discrepancies` (replacing this partition's
    earlier findings) and folded into `recon.drift_incidents`."""
    started_at = datetime.now(UTC)
    # A chain loan a provisional row is waiting for is that row's loan, not a missing one.
    claimed = set(provisional_loans.loc[provisional_loans["chain_loan_id"].isna(), "real_loan_id"].dropna())
    unclaimed_chain = chain_loans[~chain_loans["loan_id"].map(int).isin(claimed - set(db_loans["loan_id"].map(int)))]
    results = [
        _entity_diff(LOANS_SPEC, db_loans, unclaimed_chain),
        _entity_diff(POSITIONS_SPEC, db_liquidity_positions, chain_liquidity_positions),
        _entity_diff(REPUTATION_SPEC, db_reputation, chain_reputation),
        _sweep_findings(provisional_loans, pending_lending_transactions),
    ]
    known_by_row_id = pd.DataFrame(
        {"entity_type": LOANS_SPEC.entity_type, "entity_id": sweep.provisional_entity_ids(db_loans["db_loan_id"])}
    )
    findings = concat_findings([r[0] for r in results])
    checked = pd.concat([*(r[1] for r in results), known_by_row_id], ignore_index=True)
    _persist(
        context, postgres, recon_settings, findings, checked, sum(r[2] for r in results),
        ledger_sequence=_latest_ledger(chain_loans, chain_liquidity_positions, chain_reputation),
        snapshot_at=db_loans.attrs.get("snapshot_at"),
        started_at=started_at,
    )
    return findings


@dg.asset(group_name=SWEEP_GROUP, kinds={"postgres", "pandas"})
def lending_sweep_discrepancies(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    provisional_loans: pd.DataFrame,
    pending_lending_transactions: pd.DataFrame,
) -> pd.DataFrame:
    """The sweep's findings between nightly runs: provisional loan ids that can be resolved
    or are stuck, and pending transactions past the grace period with their chain status.
    Persisted to `recon.discrepancies` under the sweep's run, folded into incidents."""
    started_at = datetime.now(UTC)
    findings, checked, unchecked = _sweep_findings(provisional_loans, pending_lending_transactions)
    ledgers = pending_lending_transactions["latest_ledger"].dropna()
    _persist(
        context, postgres, recon_settings, findings, checked, unchecked,
        ledger_sequence=int(max(ledgers)) if len(ledgers) else None,
        snapshot_at=None,
        started_at=started_at,
    )
    return findings


# -- repairs -----------------------------------------------------------------


def _repair(
    context: dg.AssetExecutionContext, config: RepairConfig, postgres: PostgresResource, plan: pd.DataFrame
) -> dg.MaterializeResult:
    return repair_step(context, config, postgres.engine, DOMAIN, plan)


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres"})
def lending_repairs(
    context: dg.AssetExecutionContext,
    config: RepairConfig,
    postgres: PostgresResource,
    lending_discrepancies: pd.DataFrame,
    chain_loans: pd.DataFrame,
) -> dg.MaterializeResult:
    """Repairs of the lending tables toward the chain (authoritative): provisional ids
    resolved, missing loans inserted from chain state, stale statuses and amounts set,
    orphaned transactions settled. Planned into `recon.repairs`, applied with
    compare-and-swap when the run's config sets `apply` and not `dry_run`, each with its
    audit row. Nothing is ever written on chain."""
    return _repair(context, config, postgres, plans.nightly_repairs(lending_discrepancies, chain_loans))


@dg.asset(group_name=SWEEP_GROUP, kinds={"postgres"})
def lending_sweep_repairs(
    context: dg.AssetExecutionContext,
    config: RepairConfig,
    postgres: PostgresResource,
    lending_sweep_discrepancies: pd.DataFrame,
) -> dg.MaterializeResult:
    """The sweep's repairs: provisional ids resolved to their real ids and orphaned
    transactions settled, with the same guards and audit as the nightly repairs."""
    return _repair(context, config, postgres, plans.sweep_repairs(lending_sweep_discrepancies))


LENDING_ASSETS = [
    lending_events,
    db_loans,
    chain_loans,
    db_liquidity_positions,
    chain_liquidity_positions,
    db_reputation,
    chain_reputation,
    provisional_loans,
    pending_lending_transactions,
    lending_discrepancies,
    lending_repairs,
]
LENDING_SWEEP_ASSETS = [lending_sweep_discrepancies, lending_sweep_repairs]
LENDING_SWEEP_SELECTION = dg.AssetSelection.assets(
    provisional_loans, pending_lending_transactions, lending_sweep_discrepancies, lending_sweep_repairs
)
"""What the 5-minute sweep job materializes."""
