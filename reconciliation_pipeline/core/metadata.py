"""Dagster metadata every domain attaches the same way, under the same keys.

One name per figure across domains: `sweep_mode`, `entries_unchanged`,
`rpc_requests`, ... A discrepancies asset shows `drift/<class>` counts only for
the classes its domain can produce, so its plots mean something.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg
import pandas as pd

from reconciliation_pipeline.core.drift import DriftClass
from reconciliation_pipeline.core.findings import drifting
from reconciliation_pipeline.core.results import ChainSnapshot
from reconciliation_pipeline.core.run_budget import not_read_mask
from reconciliation_pipeline.core.snapshots import READ_ERROR, READ_MISSING, READ_OK, READ_UNCHANGED

SAMPLE_COLUMNS = ["entity_id", "field", "drift_class", "severity", "status", "db_value", "chain_value", "delta",
                  "chain_written", "db_written_at"]
SEVERITY_ORDER = {"CRITICAL": 0, "WARN": 1, "INFO": 2}


def markdown_table(frame: pd.DataFrame, empty: str, rows: int = 20) -> dg.MetadataValue:
    """The first rows of a frame as a markdown table (or `empty` when it has none)."""
    return dg.MetadataValue.md(frame.head(rows).astype(str).to_markdown(index=False) if len(frame) else empty)


def frame_metadata(frame: pd.DataFrame) -> dict[str, Any]:
    """Row count and column schema of a snapshot frame."""
    return {
        "dagster/row_count": len(frame),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in frame.dtypes.items()]
        ),
    }


def origin_text(details: Mapping[str, Any]) -> str | None:
    """Where the chain value came from, in a few words: the ledger, and the transaction and operation."""
    origin = details.get("origin")
    if not isinstance(origin, Mapping):
        return None
    text = f"ledger {origin['ledger']}"
    if origin.get("closed_at"):
        text += f" ({origin['closed_at']})"
    if origin.get("tx_hash"):
        op = origin.get("operation_index")
        text += f" by tx {origin['tx_hash'][:12]}…" + (f" op {op}" if op is not None else "")
    return text


def findings_metadata(findings: pd.DataFrame, classes: Iterable[DriftClass], sample_rows: int = 20) -> dict[str, Any]:
    """Drift counts of the domain's classes as numbers (the UI plots them across runs; findings in
    flight are counted apart) and a markdown sample, CRITICAL first, with where each chain value
    came from and when the row was written."""
    counts = drifting(findings)["drift_class"].value_counts()
    metadata: dict[str, Any] = {f"drift/{c.value}": int(counts.get(c.value, 0)) for c in classes}
    metadata["findings"] = len(findings)
    if len(findings):
        sample = findings.assign(
            _order=findings["severity"].map(SEVERITY_ORDER),
            chain_written=findings["details"].map(origin_text),
            db_written_at=findings["details"].map(lambda d: d.get("db_written_at")),
        ).sort_values(["_order", "drift_class", "entity_id"])
        metadata["findings_sample"] = dg.MetadataValue.md(
            sample[SAMPLE_COLUMNS].head(sample_rows).astype(object).to_markdown(index=False))
    else:
        metadata["findings_sample"] = dg.MetadataValue.md("No findings: both sides agree.")
    return metadata


def read_metadata(chain: ChainSnapshot) -> dict[str, Any]:
    """What a chain read did: entries by outcome, requests, the ledger, the sweep mode."""
    frame = chain.frame
    statuses = frame["read_status"].value_counts()
    not_read = int(not_read_mask(frame).sum())
    undecodable = frame["read_error"].map(lambda e: isinstance(e, str) and e.startswith("undecodable")).astype(bool)
    return {
        **frame_metadata(frame),
        "ledger_sequence": chain.ledger_sequence,
        "sweep_mode": chain.mode,
        "rpc_requests": chain.requests,
        "failed_batches": chain.failed_batches,
        "entries_ok": int(statuses.get(READ_OK, 0)),
        "entries_missing": int(statuses.get(READ_MISSING, 0)),
        "entries_unreadable": int(statuses.get(READ_ERROR, 0)) - not_read,
        "entries_undecodable": int(undecodable.sum()),
        "entries_not_read_time_limit": not_read,
        "entries_unchanged": int(statuses.get(READ_UNCHANGED, 0)),
        "keys_discovered_on_chain": chain.discovered,
        "keys_not_read_invalid_address": len(chain.not_read_invalid),
    }
