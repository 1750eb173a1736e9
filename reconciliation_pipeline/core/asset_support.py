"""Small pieces every domain's assets use the same way."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from sqlalchemy.engine import Engine

from reconciliation_pipeline.chain.reader import ProgressCallback
from reconciliation_pipeline.core import repairs
from reconciliation_pipeline.core.diff import invariant_findings
from reconciliation_pipeline.core.drift_store import RunInfo
from reconciliation_pipeline.core.spec import ReconSpec

DATABASE = "database"
CHAIN = "chain"


def run_info(context: dg.AssetExecutionContext) -> RunInfo:
    return RunInfo(
        run_id=context.run_id,
        job_name=context.job_name,
        partition_key=context.partition_key if context.has_partition_key else None,
    )


def batch_progress(context: dg.AssetExecutionContext, what: str) -> ProgressCallback:
    """Logs a long read every tenth of its batches, so the run's log shows it moving."""
    step = {"next": 0.1}

    def report(done: int, total: int) -> None:
        if done == total or done / total >= step["next"]:
            context.log.info(f"{what}: {done}/{total} getLedgerEntries batches")
            step["next"] = done / total + 0.1

    return report


def markdown_table(frame: pd.DataFrame, empty: str, rows: int = 20) -> dg.MetadataValue:
    """The first rows of a frame as a markdown table (or `empty` when it has none)."""
    return dg.MetadataValue.md(frame.head(rows).astype(str).to_markdown(index=False) if len(frame) else empty)


def invariants_check(
    check_name: str,
    spec: ReconSpec,
    model: type[pa.DataFrameModel],
    frame: pd.DataFrame,
    side: str,
    clean: str = "Every row satisfies the invariants.",
) -> dg.AssetCheckResult:
    """A lazy pandera validation as a check result: WARN on the database side, ERROR on
    the chain (a contract breaking its own invariants), with a sample of violations."""
    database = side == DATABASE
    found = invariant_findings(
        spec, model, frame, side=side,
        severity=spec.db_invariant_severity if database else spec.chain_invariant_severity,
    )
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=found.empty,
        severity=dg.AssetCheckSeverity.WARN if database else dg.AssetCheckSeverity.ERROR,
        metadata={
            "violations": len(found),
            "rows_checked": len(frame),
            "sample": markdown_table(found[["entity_id", "field", "db_value" if database else "chain_value"]], clean),
        },
    )


class RepairConfig(dg.Config):
    """Repairs are planned on every run; applied only when asked, never in a dry run."""

    apply: bool = False
    dry_run: bool = False


def repair_step(
    context: dg.AssetExecutionContext, config: RepairConfig, engine: Engine, domain: str, plan: pd.DataFrame
) -> dg.MaterializeResult:
    """Record the plan, apply it when the run asks (compare-and-swap, audited), report it."""
    run = run_info(context)
    repairs.record_plan(engine, run, domain, plan)
    if config.apply and not config.dry_run:
        outcome = repairs.apply_plan(engine, run, plan)
    else:
        outcome = repairs.RepairOutcome(planned=len(plan))
    repairs.record_run_repairs(engine, run, domain, dry_run=config.dry_run, outcome=outcome)
    mode = "dry run" if config.dry_run else ("apply" if config.apply else "plan only")
    context.log.info(
        f"{context.asset_key.to_user_string()} ({mode}): planned {outcome.planned}, applied {outcome.applied}, "
        f"skipped {outcome.skipped}, failed {outcome.failed}"
    )
    return dg.MaterializeResult(
        metadata={
            "mode": mode,
            "repairs_planned": outcome.planned,
            "repairs_applied": outcome.applied,
            "repairs_skipped": outcome.skipped,
            "repairs_failed": outcome.failed,
            "plan": markdown_table(plan[["entity_id", "field", "observed_value", "target_value"]], "Nothing to repair."),
        }
    )
