"""USDC balances assets: users' balances as the app records them, as the chain holds them, and their diff.

Not partitioned: every run (every 5 minutes) compares current balances and
appends its findings; incidents carry drift across runs. Those runs are
incremental: `usdc_movements` names the holders the USDC SAC's events say moved
since the last run (CAP-67 makes every USDC movement emit one), and only they,
users whose row the app wrote since then and users with open incidents are
read and compared. The nightly full sweep (run tag `recon/sweep=full`) compares
every user, which also catches a row written without moving `updated_at`.
"""

import time
from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.asset_support import DATABASE, batch_progress, invariants_check
from reconciliation_pipeline.core.drift_store import RunInfo, persist_domain_run
from reconciliation_pipeline.core.metadata import frame_metadata, persisted_run_metadata
from reconciliation_pipeline.core.metrics import DomainRunMetrics, PushgatewayResource, findings_by_class_and_severity
from reconciliation_pipeline.core.run_budget import RunBudgetResource, budgeted_reader, not_read_mask
from reconciliation_pipeline.core.snapshots import snapshot_db
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, open_incident_keys, plan_sweep, write_watermark
from reconciliation_pipeline.defs.balances.chain import HOLDER_KIND_FIELD, holder_kinds, snapshot_usdc_balances
from reconciliation_pipeline.defs.balances.events import scan_movements
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
CHANGED_SPEC = replace(SPEC, snapshot_query="snapshots/balances/db_usdc_balances_changed.sql")
WATERMARK_SCOPE = "usdc_movements"
BALANCE_INVARIANTS_CHECK = "balance_invariants"


@dg.asset(group_name=GROUP, kinds={"stellar", "pandas"})
def usdc_movements(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    run_budget: RunBudgetResource,
) -> dg.MaterializeResult:
    """The wallets whose USDC moved since the last balances run: every address the USDC
    Stellar Asset Contract's `transfer`, `mint`, `burn` and `clawback` events named in
    the ledgers since (classic payments included, CAP-67). Empty for a full sweep, which
    compares every user: the first run, a run tagged `recon/sweep=full`, or one whose
    events since the last run are out of the RPC's retention."""
    with budgeted_reader(soroban_rpc.rpc_url, soroban_rpc.reader_settings(), run_budget.budget(context)) as reader:
        latest = reader.latest_ledger()
        plan = plan_sweep(postgres.engine, SPEC.domain, WATERMARK_SCOPE, context.run.tags, latest)
        plan, movements = scan_movements(reader, contracts.usdc_contract_id, plan, latest)
    frame = pd.DataFrame({WALLET_FIELD: sorted(movements.holders)}, dtype=object)
    db_since = plan.watermark.db_since.isoformat() if plan.watermark is not None else None
    frame.attrs.update(sweep_mode=plan.mode, sweep_reason=plan.reason, scanned_to_ledger=latest, db_since=db_since)
    return dg.MaterializeResult(
        value=frame,
        metadata={
            "sweep_mode": plan.mode,
            "sweep_reason": plan.reason,
            "events": movements.events,
            "wallets_named": len(frame),
            "ledger_from": plan.watermark.ledger_sequence + 1 if plan.watermark is not None else None,
            "ledger_to": latest,
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"postgres", "pandas"},
    check_specs=[dg.AssetCheckSpec(BALANCE_INVARIANTS_CHECK, asset="db_usdc_balances",
                                   description="every balance compared is a non-negative exact integer")],
)
# No return annotation: with check_specs Dagster reads one as the type of every output.
def db_usdc_balances(  # noqa: ANN201
    context: dg.AssetExecutionContext, postgres: PostgresResource, usdc_movements: pd.DataFrame
):
    """Users' USDC balances as the app shows them, for the users this run compares
    (exact base units, 1 USDC = 10,000,000): every user with a wallet in a full sweep;
    otherwise those whose wallet moved on chain, whose row the app wrote since the
    last run, or who have open incidents. Users without a wallet are only counted:
    they hold no on-chain USDC to compare with."""
    engine = postgres.engine
    if usdc_movements.attrs["sweep_mode"] == FULL_SWEEP:
        snapshot = snapshot_db(engine, SPEC, {})
        scope = "every user with a wallet"
    else:
        incident_ids = open_incident_keys(engine, SPEC)
        snapshot = snapshot_db(engine, CHANGED_SPEC, {
            "since": datetime.fromisoformat(usdc_movements.attrs["db_since"]),
            "ids": [int(k) for k in incident_ids],
            "wallets": list(usdc_movements[WALLET_FIELD]),
        })
        scope = (f"{len(usdc_movements)} wallets that moved, rows written since {usdc_movements.attrs['db_since']}, "
                 f"{len(incident_ids)} users with open incidents")
    with engine.connect() as connection:
        without_wallet = int(connection.execute(sql.query("snapshots/balances/users_without_wallet.sql")).scalar_one())
    # Each wallet is validated once, here; the chain read and the diff use the column.
    frame = snapshot.frame.assign(**{HOLDER_KIND_FIELD: holder_kinds(snapshot.frame[WALLET_FIELD])})
    frame.attrs.update(snapshot_at=snapshot.taken_at.isoformat(), users_without_wallet=without_wallet)
    return dg.MaterializeResult(
        value=frame,
        metadata={
            **frame_metadata(frame),
            "snapshot_at": snapshot.taken_at.isoformat(),
            "compared_users": scope,
            "users_without_wallet": without_wallet,
        },
        check_results=[
            invariants_check(BALANCE_INVARIANTS_CHECK, SPEC, BalanceInvariants, frame, DATABASE,
                             "Every balance compared is a non-negative exact integer.")
        ],
    )


@dg.asset(group_name=GROUP, kinds={"stellar", "pandas"})
def chain_usdc_balances(
    context: dg.AssetExecutionContext,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    run_budget: RunBudgetResource,
    db_usdc_balances: pd.DataFrame,
) -> pd.DataFrame:
    """Each compared wallet's USDC on chain: a G... account's USDC trustline, a C...
    contract's balance entry on the USDC Stellar Asset Contract. Read 200 per request
    in user-id order within the run's time limit; invalid wallets are never queried."""
    valid = db_usdc_balances[HOLDER_KIND_FIELD].notna().astype(bool)
    budget = run_budget.budget(context)
    with budgeted_reader(soroban_rpc.rpc_url, soroban_rpc.reader_settings(), budget) as reader:
        frame = snapshot_usdc_balances(
            reader, SPEC, db_usdc_balances.loc[valid, [SPEC.key_column, WALLET_FIELD, HOLDER_KIND_FIELD]],
            asset_code=contracts.usdc_asset_code, issuer=contracts.usdc_issuer,
            sac_contract_id=contracts.usdc_contract_id, progress=batch_progress(context, "chain_usdc_balances"),
        )
    statuses = frame["read_status"].value_counts()
    not_read = int(not_read_mask(frame).sum())
    context.add_output_metadata(
        {
            **frame_metadata(frame),
            "ledger_sequence": frame.attrs.get("ledger_sequence"),
            "rpc_requests": frame.attrs.get("rpc_requests", 0),
            "failed_batches": frame.attrs.get("failed_batches", 0),
            "holders_read": int(statuses.get("ok", 0)),
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
    usdc_movements: pd.DataFrame,
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
    sweep_mode = usdc_movements.attrs["sweep_mode"]
    # Holders left unread at the time limit have no finding to re-check them by: the
    # watermark stays, so the next run looks at the same movements and rows again.
    watermark_moved = diff.not_read == 0
    if watermark_moved:
        write_watermark(postgres.engine, SPEC.domain, WATERMARK_SCOPE, context.run_id,
                        usdc_movements.attrs["scanned_to_ledger"], datetime.fromisoformat(snapshot_at))
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
        f"compared; {without_wallet} users without a wallet skipped; {diff.not_read} holders not read before the "
        f"time limit"
    )
    context.add_output_metadata(
        {
            **persisted_run_metadata(findings, summary, len(diff.checked), diff.unchecked),
            **metrics.as_metadata(),
            "metrics_pushed": pushed,
            "users_without_wallet": without_wallet,
            "sweep_mode": sweep_mode,
            "watermark_moved": watermark_moved,
        }
    )
    return findings


BALANCES_ASSETS = [usdc_movements, db_usdc_balances, chain_usdc_balances, usdc_balance_discrepancies]
