"""A whole-run time limit shared by every step of a run.

A run that reads a flaky RPC must still end on time (the 5-minute jobs must
not pile up). The limit counts from the run's start as Dagster recorded it, so
every step of the run, in whichever process, sees the same deadline. Chain
reads stop early enough that the request in flight and the persisting steps
still fit: `reserve_s` is kept back for them. Keys not read by then are
"not checked" (the run is recorded as partial), never findings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from reconciliation_pipeline.chain.reader import NOT_READ_TIME_LIMIT, ChainReader, ReaderSettings

RUN_TIME_LIMIT_VARIABLE = "RUN_TIME_LIMIT_SECONDS"
NIGHTLY_RUN_TIME_LIMIT_VARIABLE = "NIGHTLY_RUN_TIME_LIMIT_SECONDS"
MIN_FINISH_MARGIN_S = 2.0
FINISH_MARGIN_SHARE = 0.1
"""Time kept back for persisting results: this share of the limit, at least MIN_FINISH_MARGIN_S."""


@dataclass(frozen=True)
class RunBudget:
    started_at: datetime
    limit_s: float
    variable: str = RUN_TIME_LIMIT_VARIABLE
    """The setting the limit comes from, named in errors."""

    def elapsed_s(self) -> float:
        return (datetime.now(UTC) - self.started_at).total_seconds()

    def reserve_s(self, request_timeout_s: float) -> float:
        """Time kept back from reading: the last request's timeout plus a margin to persist."""
        return request_timeout_s + max(MIN_FINISH_MARGIN_S, FINISH_MARGIN_SHARE * self.limit_s)

    def read_deadline(self, request_timeout_s: float) -> float:
        """The `time.monotonic()` instant after which no chain request may start."""
        remaining = self.limit_s - self.reserve_s(request_timeout_s) - self.elapsed_s()
        return time.monotonic() + remaining


def run_budget(instance: dg.DagsterInstance, run_id: str, limit_s: float, variable: str) -> RunBudget:
    """The budget of a run, counted from when Dagster started it (the same in every step's process)."""
    record = instance.get_run_record_by_id(run_id)
    started = record.start_time if record is not None and record.start_time else None
    started_at = datetime.fromtimestamp(started, UTC) if started else datetime.now(UTC)
    return RunBudget(started_at=started_at, limit_s=float(limit_s), variable=variable)


@contextmanager
def budgeted_reader(rpc_url: str, settings: ReaderSettings, budget: RunBudget,
                    request_slots: AbstractContextManager[Any] | None = None) -> Iterator[ChainReader]:
    """A chain reader that issues no request once the run's read deadline has passed (and holds
    one of `request_slots`, when given, around each getLedgerEntries request)."""
    if budget.reserve_s(settings.request_timeout_s) >= budget.limit_s:
        raise dg.DagsterInvariantViolationError(
            f"{budget.variable} ({budget.limit_s:g} s) leaves no time to read: it must exceed "
            f"RPC_REQUEST_TIMEOUT_MS ({settings.request_timeout_s:g} s) plus "
            f"{budget.reserve_s(0):g} s kept to persist the results"
        )
    reader = ChainReader(rpc_url, settings, deadline=budget.read_deadline(settings.request_timeout_s),
                         request_slots=request_slots)
    try:
        yield reader
    finally:
        reader.close()


def not_read_mask(chain: pd.DataFrame) -> pd.Series:
    """Rows of a chain snapshot the run never requested because its time limit was reached."""
    if "read_error" not in chain or chain.empty:
        return pd.Series(False, index=chain.index, dtype=bool)
    errors = chain["read_error"].to_numpy(dtype=object)
    present = pd.notna(errors)
    # Only the rows with an error are looked at (almost none of a sweep's million).
    mask = np.zeros(len(errors), dtype=bool)
    mask[present] = [isinstance(e, str) and e.endswith(NOT_READ_TIME_LIMIT) for e in errors[present]]
    return pd.Series(mask, index=chain.index, dtype=bool)
