"""Markets assets: the `markets` table, the AMM's pools, each market's contract, and their diff.

Not partitioned: every run (every 5 minutes) compares the current state of both
sides and appends its findings; incidents carry drift across runs. Those runs are
incremental (`core.entry_versions`): every entry is read, but only entries
modified since they were last compared, markets whose row changed and entities
with open incidents are decoded and diffed. The nightly full sweep compares all.
"""

import time
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from reconciliation_pipeline.chain.addresses import valid_address_mask
from reconciliation_pipeline.core.asset_support import batch_progress, invariants_check, markdown_table
from reconciliation_pipeline.core.drift import Severity
from reconciliation_pipeline.core.drift_store import RunInfo, persist_domain_run
from reconciliation_pipeline.core.entry_versions import WATERMARK_SCOPE, ComparedEntries, finish_sweep, known_versions
from reconciliation_pipeline.core.metadata import frame_metadata, persisted_run_metadata
from reconciliation_pipeline.core.metrics import DomainRunMetrics, PushgatewayResource, findings_by_class_and_severity
from reconciliation_pipeline.core.run_budget import RunBudgetResource, budgeted_reader, not_read_mask
from reconciliation_pipeline.core.snapshots import decoded_rows, snapshot_chain, snapshot_db
from reconciliation_pipeline.core.watermarks import plan_sweep
from reconciliation_pipeline.defs.markets.chain import snapshot_market_contracts
from reconciliation_pipeline.defs.markets.findings import diff_markets
from reconciliation_pipeline.defs.markets.resources import MarketsSettingsResource
from reconciliation_pipeline.defs.markets.spec import (
    MARKET_SPEC,
    POOL_SPEC,
    MarketRowInvariants,
    PoolInvariants,
    ResolutionInvariants,
)
from reconciliation_pipeline.resources import (
    PostgresResource,
    ReconSettingsResource,
    SorobanRpcResource,
    StellarContractsResource,
)

GROUP = "markets"
MARKET_INVARIANTS_CHECK = "market_invariants"
POOL_INVARIANTS_CHECK = "pool_invariants"
CONTRACT_INVARIANTS_CHECK = "contract_invariants"
NO_CRITICAL_DRIFT_CHECK = "no_critical_drift"
POOL_ENTRY = "amm_pool"
MARKET_ENTRY = "market_instance"


def _read_metadata(frame: pd.DataFrame) -> dict[str, object]:
    statuses = frame["read_status"].value_counts()
    not_read = int(not_read_mask(frame).sum())
    return {
        **frame_metadata(frame),
        "sweep_mode": frame.attrs.get("sweep_mode"),
        "sweep_reason": frame.attrs.get("sweep_reason"),
        "entries_unchanged_skipped": int(statuses.get("unchanged", 0)),
        "ledger_sequence": frame.attrs.get("ledger_sequence"),
        "rpc_requests": frame.attrs.get("rpc_requests", 0),
        "failed_batches": frame.attrs.get("failed_batches", 0),
        "entries_ok": int(statuses.get("ok", 0)),
        "entries_missing": int(statuses.get("missing", 0)),
        "entries_unreadable": int(statuses.get("error", 0)) - not_read,
        "entries_not_read_time_limit": not_read,
    }


@dg.asset(
    group_name=GROUP,
    kinds={"postgres", "pandas"},
    check_specs=[dg.AssetCheckSpec(MARKET_INVARIANTS_CHECK, asset="db_markets",
                                   description="liquidity >= 0 and exact; a winning outcome exactly when resolved")],
)
# No return annotation: with check_specs Dagster reads one as the type of every output.
def db_markets(context: dg.AssetExecutionContext, postgres: PostgresResource):  # noqa: ANN201
    """Prediction markets as the application database records them: title, the market's
    contract, status, winning outcome and the pool liquidity users trade against
    (exact integers in base units). One row per market."""
    snapshot = snapshot_db(postgres.engine, POOL_SPEC, {})
    frame = snapshot.frame
    frame.attrs["snapshot_at"] = snapshot.taken_at.isoformat()
    return dg.MaterializeResult(
        value=frame,
        metadata={**frame_metadata(frame), "snapshot_at": snapshot.taken_at.isoformat()},
        check_results=[invariants_check(MARKET_INVARIANTS_CHECK, MARKET_SPEC, MarketRowInvariants, frame, "database")],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"stellar", "pandas"},
    check_specs=[dg.AssetCheckSpec(POOL_INVARIANTS_CHECK, asset="chain_market_pools",
                                   description="every decoded pool has non-negative exact liquidity")],
)
def chain_market_pools(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    run_budget: RunBudgetResource,
    db_markets: pd.DataFrame,
):  # noqa: ANN201 - see db_markets
    """The AMM's `Pool(u64)` entry of every market the database knows: YES and NO
    liquidity, which set the odds users see. Read 200 per request within the run's
    time limit; unreadable entries are kept with `read_status = error` and their payload.
    An incremental run leaves pools compared before at the same ledger `unchanged`."""
    budget = run_budget.budget(context)
    with budgeted_reader(soroban_rpc.rpc_url, soroban_rpc.reader_settings(), budget) as reader:
        read_from_ledger = reader.latest_ledger()
        plan = plan_sweep(postgres.engine, POOL_SPEC.domain, WATERMARK_SCOPE, context.run.tags, read_from_ledger)
        versions = known_versions(postgres.engine, plan, POOL_SPEC, POOL_ENTRY, db_markets)
        frame = snapshot_chain(reader, POOL_SPEC, contracts.amm_contract_id, db_markets["market_id"].map(int),
                               progress=batch_progress(context, "chain_market_pools"), versions=versions)
    frame.attrs.update(sweep_mode=plan.mode, sweep_reason=plan.reason, watermark_ledger=read_from_ledger)
    return dg.MaterializeResult(
        value=frame,
        metadata=_read_metadata(frame),
        check_results=[invariants_check(POOL_INVARIANTS_CHECK, POOL_SPEC, PoolInvariants, decoded_rows(frame),
                                         "chain")],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"stellar", "pandas"},
    check_specs=[dg.AssetCheckSpec(CONTRACT_INVARIANTS_CHECK, asset="chain_market_contracts",
                                   description="a market contract has an outcome exactly when resolved")],
)
def chain_market_contracts(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    run_budget: RunBudgetResource,
    db_markets: pd.DataFrame,
):  # noqa: ANN201 - see db_markets
    """Each market contract's own view of the market, from its instance storage:
    status (open, closed, resolved) and, once resolved, the winning outcome that
    pays out. Many contracts per request; markets whose contract address is not a
    valid C... address are not read (they are INVALID_ADDRESS findings). An incremental
    run leaves contracts compared before at the same ledger `unchanged`."""
    valid = valid_address_mask(db_markets["contract_address"])
    budget = run_budget.budget(context)
    with budgeted_reader(soroban_rpc.rpc_url, soroban_rpc.reader_settings(), budget) as reader:
        read_from_ledger = reader.latest_ledger()
        plan = plan_sweep(postgres.engine, MARKET_SPEC.domain, WATERMARK_SCOPE, context.run.tags,
                          read_from_ledger)
        versions = known_versions(postgres.engine, plan, MARKET_SPEC, MARKET_ENTRY, db_markets)
        frame = snapshot_market_contracts(reader, MARKET_SPEC, db_markets[valid],
                                          progress=batch_progress(context, "chain_market_contracts"),
                                          versions=versions)
    frame.attrs.update(sweep_mode=plan.mode, sweep_reason=plan.reason, watermark_ledger=read_from_ledger)
    return dg.MaterializeResult(
        value=frame,
        metadata={**_read_metadata(frame), "invalid_contract_addresses": int((~valid).sum())},
        check_results=[invariants_check(CONTRACT_INVARIANTS_CHECK, MARKET_SPEC, ResolutionInvariants,
                                         decoded_rows(frame), "chain")],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"postgres", "pandas"},
    check_specs=[dg.AssetCheckSpec(NO_CRITICAL_DRIFT_CHECK, asset="market_discrepancies",
                                   description="no CRITICAL finding, e.g. a resolved market paying out "
                                   "on a different outcome than its contract")],
)
def market_discrepancies(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    markets_settings: MarketsSettingsResource,
    run_budget: RunBudgetResource,
    pushgateway: PushgatewayResource,
    db_markets: pd.DataFrame,
    chain_market_pools: pd.DataFrame,
    chain_market_contracts: pd.DataFrame,
):  # noqa: ANN201 - see db_markets
    """Every disagreement between the markets table and the chain: liquidity and odds
    against the AMM pool, status and winning outcome against the market's contract
    (a different outcome is CRITICAL), typed by drift class, appended to
    `recon.discrepancies` and folded into `recon.drift_incidents`."""
    started_at = datetime.now(UTC)
    budget = run_budget.budget(context)
    diff = diff_markets(db_markets, chain_market_pools, chain_market_contracts, markets_settings.odds_threshold())
    findings = diff.findings
    snapshot_at = db_markets.attrs.get("snapshot_at")
    ledgers = [f.attrs.get("ledger_sequence") for f in (chain_market_pools, chain_market_contracts)]
    summary = persist_domain_run(
        postgres.engine,
        RunInfo(run_id=context.run_id, job_name=context.job_name, partition_key=None),
        POOL_SPEC.domain,
        findings,
        checked=diff.checked,
        unchecked_count=diff.unchecked,
        ledger_sequence=max((x for x in ledgers if x is not None), default=None),
        db_snapshot_at=datetime.fromisoformat(snapshot_at) if snapshot_at else None,
        started_at=started_at,
        policy=recon_settings.incident_policy(),
    )
    sweep_mode = chain_market_pools.attrs["sweep_mode"]
    versions_recorded = finish_sweep(
        postgres.engine, POOL_SPEC.domain, context.run_id,
        [ComparedEntries(POOL_ENTRY, chain_market_pools, POOL_SPEC.key_column, sweep_mode),
         ComparedEntries(MARKET_ENTRY, chain_market_contracts, MARKET_SPEC.key_column,
                         chain_market_contracts.attrs["sweep_mode"])],
        ledger_sequence=min(f.attrs["watermark_ledger"] for f in (chain_market_pools, chain_market_contracts)),
        db_snapshot_at=datetime.fromisoformat(snapshot_at),
    )
    unchanged = sum(int(f.attrs.get("entries_unchanged", 0)) for f in (chain_market_pools, chain_market_contracts))
    decode_errors = sum(
        int(f["read_error"].map(lambda e: isinstance(e, str) and e.startswith("undecodable")).sum())
        for f in (chain_market_pools, chain_market_contracts)
    )
    metrics = DomainRunMetrics(
        domain=POOL_SPEC.domain,
        run_id=context.run_id,
        job_name=context.job_name,
        duration_s=budget.elapsed_s(),
        status=summary.status,
        findings=findings_by_class_and_severity(findings),
        errors={
            "read_pools": int(chain_market_pools.attrs.get("failed_batches", 0)),
            "read_market_contracts": int(chain_market_contracts.attrs.get("failed_batches", 0)),
            "decode": decode_errors,
            "time_limit": diff.not_read,
        },
        entities_checked=len(diff.checked),
        entities_unchecked=diff.unchecked,
        finished_at_unix=time.time(),
    )
    pushed = pushgateway.push(metrics, context.log)
    context.log.info(
        f"markets ({sweep_mode} sweep): {summary.findings} findings ({summary.status}); "
        f"{len(diff.checked)} entities compared, {unchanged} entries unchanged since last compared; "
        f"incidents confirmed {summary.confirmed}, "
        f"resolved {summary.resolved}; {diff.not_read} entities not read before the time limit"
    )
    critical = findings[findings["severity"] == Severity.CRITICAL.value]
    return dg.MaterializeResult(
        value=findings,
        metadata={
            **persisted_run_metadata(findings, summary, len(diff.checked), diff.unchecked),
            **metrics.as_metadata(),
            "metrics_pushed": pushed,
            "sweep_mode": sweep_mode,
            "entries_skipped_unchanged": unchanged,
            "entry_versions_recorded": versions_recorded,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=NO_CRITICAL_DRIFT_CHECK,
                passed=critical.empty,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "critical_findings": len(critical),
                    "sample": markdown_table(
                        critical[["entity_id", "field", "drift_class", "db_value", "chain_value"]], "No critical drift."
                    ),
                },
            )
        ],
    )


MARKETS_ASSETS = [db_markets, chain_market_pools, chain_market_contracts, market_discrepancies]
