"""USDC balances assets: users' balances as the app records them, as the chain holds them, and their diff.

Not partitioned: every run (every 5 minutes) compares current balances and
appends its findings; incidents carry drift across runs. Those runs are
incremental (`core.entry_versions`): every holding is read, but only those
modified since they were last compared, users whose row changed and users with
open incidents are decoded and diffed. The nightly full sweep compares all.
"""

import time
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.asset_support import DATABASE, batch_progress, invariants_check
from reconciliation_pipeline.core.drift_store import RunInfo, persist_domain_run
from reconciliation_pipeline.core.entry_versions import ComparedEntries, finish_sweep, known_versions, plan_sweep
from reconciliation_pipeline.core.metadata import frame_metadata, persisted_run_metadata
from reconciliation_pipeline.core.metrics import DomainRunMetrics, PushgatewayResource, findings_by_class_and_severity
from reconciliation_pipeline.core.run_budget import RunBudgetResource, budgeted_reader, not_read_mask
from reconciliation_pipeline.core.snapshots import snapshot_db
from reconciliation_pipeline.defs.balances.chain import HOLDER_KIND_FIELD, holder_kinds, snapshot_usdc_balances
from reconciliation_pipeline.defs.balances.findings import diff_balances
from reconciliation_pipeline.defs.balances.resources import BalancesSettingsResource
from reconciliation_pipeline.defs.balances.spec import BALANCES_SPEC, WALLET_FIELD, BalanceInvariants
from reconciliation_pipeline.resources import (
    PostgresResource,
    ReconSettingsResource,
    SorobanRpcResource,
    StellarContractsResource,
)

GROUP = "balances"
SPEC = BALANCES_SPEC
BALANCE_INVARIANTS_CHECK = "balance_invariants"
HOLDING_ENTRY = "usdc_holding"


@dg.asset(
    group_name=GROUP,
    kinds={"postgres", "pandas"},
    check_specs=[dg.AssetCheckSpec(BALANCE_INVARIANTS_CHECK, asset="db_usdc_balances",
                                   description="every balance is a non-negative exact integer")],
)
# No return annotation: with check_specs Dagster reads one as the type of every output.
def db_usdc_balances(context: dg.AssetExecutionContext, postgres: PostgresResource):  # noqa: ANN201
    """Users' USDC balances as the app shows them, for users with a wallet (exact base
    units, 1 USDC = 10,000,000). Users without a wallet are only counted: they hold no
    on-chain USDC to compare with."""
    snapshot = snapshot_db(postgres.engine, SPEC, {})
    with postgres.engine.connect() as connection:
        without_wallet = int(connection.execute(sql.query("snapshots/balances/users_without_wallet.sql")).scalar_one())
    # Each wallet is validated once, here; the chain read and the diff use the column.
    frame = snapshot.frame.assign(**{HOLDER_KIND_FIELD: holder_kinds(snapshot.frame[WALLET_FIELD])})
    frame.attrs.update(snapshot_at=snapshot.taken_at.isoformat(), users_without_wallet=without_wallet)
    return dg.MaterializeResult(
        value=frame,
        metadata={
            **frame_metadata(frame),
            "snapshot_at": snapshot.taken_at.isoformat(),
            "users_without_wallet": without_wallet,
        },
        check_results=[
            invariants_check(BALANCE_INVARIANTS_CHECK, SPEC, BalanceInvariants, frame, DATABASE,
                             "Every balance is a non-negative exact integer.")
        ],
    )


@dg.asset(group_name=GROUP, kinds={"stellar", "pandas"})
def chain_usdc_balances(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    run_budget: RunBudgetResource,
    db_usdc_balances: pd.DataFrame,
) -> pd.DataFrame:
    """Each wallet's USDC on chain: a G... account's USDC trustline, a C... contract's
    balance entry on the USDC Stellar Asset Contract. Read 200 per request in user-id
    order within the run's time limit; invalid wallets are never queried. An incremental
    run leaves holdings compared before at the same ledger `unchanged`, undecoded."""
    valid = db_usdc_balances[HOLDER_KIND_FIELD].notna().astype(bool)
    budget = run_budget.budget(context)
    with budgeted_reader(soroban_rpc.rpc_url, soroban_rpc.reader_settings(), budget) as reader:
        plan = plan_sweep(postgres.engine, SPEC.domain, context.run.tags, reader.latest_ledger)
        versions = known_versions(postgres.engine, plan, SPEC, HOLDING_ENTRY, db_usdc_balances)
        frame = snapshot_usdc_balances(
            reader, SPEC, db_usdc_balances.loc[valid, [SPEC.key_column, WALLET_FIELD, HOLDER_KIND_FIELD]],
            asset_code=contracts.usdc_asset_code, issuer=contracts.usdc_issuer,
            sac_contract_id=contracts.usdc_contract_id, progress=batch_progress(context, "chain_usdc_balances"),
            versions=versions,
        )
    frame.attrs.update(sweep_mode=plan.mode, sweep_reason=plan.reason)
    statuses = frame["read_status"].value_counts()
    not_read = int(not_read_mask(frame).sum())
    context.add_output_metadata(
        {
            **frame_metadata(frame),
            "ledger_sequence": frame.attrs.get("ledger_sequence"),
            "rpc_requests": frame.attrs.get("rpc_requests", 0),
            "failed_batches": frame.attrs.get("failed_batches", 0),
            "sweep_mode": plan.mode,
            "sweep_reason": plan.reason,
            "holders_compared": int(statuses.get("ok", 0)),
            "holders_unchanged_skipped": int(statuses.get("unchanged", 0)),
            "trustlines_missing": int(statuses.get("missing", 0)),
            "holders_unreadable": int(statuses.get("error", 0)) - not_read,
            "holders_not_read_time_limit": not_read,
            "invalid_wallets_skipped": int((~valid).sum()),
        }
    )
    return frame


@dg.asset(group_name=GROUP, kinds={"postgres", "pandas"})
def usdc_balance_discrepancies(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    balances_settings: BalancesSettingsResource,
    run_budget: RunBudgetResource,
    pushgateway: PushgatewayResource,
    db_usdc_balances: pd.DataFrame,
    chain_usdc_balances: pd.DataFrame,
) -> pd.DataFrame:
    """Every user whose USDC balance in the app disagrees with the chain beyond the
    tolerance, who has no USDC trustline, or whose wallet is invalid, typed by drift
    class, appended to `recon.discrepancies` and folded into `recon.drift_incidents`."""
    started_at = datetime.now(UTC)
    budget = run_budget.budget(context)
    diff = diff_balances(db_usdc_balances, chain_usdc_balances, balances_settings.usdc_balance_tolerance)
    findings = diff.findings
    snapshot_at = db_usdc_balances.attrs.get("snapshot_at")
    summary = persist_domain_run(
        postgres.engine,
        RunInfo(run_id=context.run_id, job_name=context.job_name, partition_key=None),
        SPEC.domain,
        findings,
        checked=diff.checked,
        unchecked_count=diff.unchecked,
        ledger_sequence=chain_usdc_balances.attrs.get("ledger_sequence"),
        db_snapshot_at=datetime.fromisoformat(snapshot_at) if snapshot_at else None,
        started_at=started_at,
        policy=recon_settings.incident_policy(),
    )
    sweep_mode = chain_usdc_balances.attrs["sweep_mode"]
    versions_recorded = finish_sweep(
        postgres.engine, SPEC.domain, context.run_id,
        [ComparedEntries(HOLDING_ENTRY, chain_usdc_balances, SPEC.key_column, sweep_mode)],
        ledger_sequence=chain_usdc_balances.attrs.get("ledger_sequence"),
        db_snapshot_at=datetime.fromisoformat(snapshot_at),
    )
    undecodable = chain_usdc_balances["read_error"].map(lambda e: isinstance(e, str) and e.startswith("undecodable"))
    metrics = DomainRunMetrics(
        domain=SPEC.domain,
        run_id=context.run_id,
        job_name=context.job_name,
        duration_s=budget.elapsed_s(),
        status=summary.status,
        findings=findings_by_class_and_severity(findings),
        errors={
            "read_balances": int(chain_usdc_balances.attrs.get("failed_batches", 0)),
            "decode": int(undecodable.sum()),
            "time_limit": diff.not_read,
        },
        entities_checked=len(diff.checked),
        entities_unchecked=diff.unchecked,
        finished_at_unix=time.time(),
    )
    pushed = pushgateway.push(metrics, context.log)
    without_wallet = db_usdc_balances.attrs.get("users_without_wallet", 0)
    context.log.info(
        f"balances ({sweep_mode} sweep): {summary.findings} findings ({summary.status}); {len(diff.checked)} users "
        f"compared, {chain_usdc_balances.attrs.get('entries_unchanged', 0)} unchanged since last compared; "
        f"{without_wallet} users without a wallet "
        f"skipped; {diff.not_read} holders not read before the time limit"
    )
    context.add_output_metadata(
        {
            **persisted_run_metadata(findings, summary, len(diff.checked), diff.unchecked),
            **metrics.as_metadata(),
            "metrics_pushed": pushed,
            "users_without_wallet": without_wallet,
            "sweep_mode": sweep_mode,
            "entities_skipped_unchanged": int(chain_usdc_balances.attrs.get("entries_unchanged", 0)),
            "entry_versions_recorded": versions_recorded,
        }
    )
    return findings


BALANCES_ASSETS = [db_usdc_balances, chain_usdc_balances, usdc_balance_discrepancies]
