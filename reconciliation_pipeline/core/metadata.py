"""Dagster metadata that every domain attaches the same way."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

from reconciliation_pipeline.core.drift_store import PersistSummary
from reconciliation_pipeline.core.findings import counts_by_class

SAMPLE_COLUMNS = ["entity_id", "field", "drift_class", "severity", "db_value", "chain_value", "delta"]


def frame_metadata(frame: pd.DataFrame) -> dict[str, Any]:
    """Row count and column schema of a snapshot frame."""
    return {
        "dagster/row_count": len(frame),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in frame.dtypes.items()]
        ),
    }


def findings_metadata(findings: pd.DataFrame, sample_rows: int = 20) -> dict[str, Any]:
    """Drift counts by class as numbers (the UI plots them across runs) and a markdown sample."""
    metadata: dict[str, Any] = {f"drift/{cls}": count for cls, count in counts_by_class(findings).items()}
    metadata["findings"] = len(findings)
    if len(findings):
        order = findings["severity"].map({"CRITICAL": 0, "WARN": 1, "INFO": 2})
        sample = findings.assign(_order=order).sort_values(["_order", "drift_class", "entity_id"])
        sample = sample[SAMPLE_COLUMNS].head(sample_rows).astype(object)
        metadata["findings_sample"] = dg.MetadataValue.md(sample.to_markdown(index=False))
    else:
        metadata["findings_sample"] = dg.MetadataValue.md("No findings: both sides agree.")
    return metadata


def persisted_run_metadata(
    findings: pd.DataFrame, summary: PersistSummary, entities_checked: int, entities_unchecked: int
) -> dict[str, Any]:
    """What every discrepancy asset shows after persisting: findings, coverage and incidents."""
    return {
        **findings_metadata(findings),
        "run_status": summary.status,
        "entities_checked": entities_checked,
        "entities_unchecked": entities_unchecked,
        "incidents_confirmed": summary.confirmed,
        "incidents_resolved": summary.resolved,
    }
