"""A domain run's row in `recon.runs`, from its first step to its last.

The row is written `running` when the domain's first step starts, so a run killed at any
point leaves a trace. The findings step records the outcome (`succeeded` / `partial`, or
`recomputed` for a run that compares nothing by design) and how
many steps follow it in this run (repairs, the streak sync); the last of those to end makes
the outcome the status. A step that raises marks its domain `failed` with the reason. A run
that ends without that (SIGKILL, a lost worker, a skipped step) is marked `failed` by the
run-failure sensor, or by the unfinished-run sensor when Dagster no longer knows it as failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from reconciliation_pipeline.core import sql

MAX_ERROR_CHARS = 2_000
"""An error kept in `recon.runs.error` is clipped: a traceback belongs in the Dagster run's log."""


@dataclass(frozen=True)
class UnfinishedRun:
    run_id: str
    domain: str
    job_name: str | None
    partition_key: str | None
    started_at: datetime


def mark_started(engine: Engine, run_id: str, domain: str, job_name: str, partition_key: str | None) -> None:
    with engine.begin() as connection:
        connection.execute(sql.query("recon/queries/run_started.sql"), {
            "run_id": run_id, "domain": domain, "job_name": job_name, "partition_key": partition_key,
            "started_at": datetime.now(UTC)})


RECOMPUTED = "recomputed"
"""The status of a run that compared nothing by design (a past day's streaks, recomputed only)."""


def record_recomputed(engine: Engine, run_id: str, domain: str, note: str, steps_pending: int) -> None:
    """A run that persisted no findings because it compares nothing by design: status `recomputed`
    (once its later steps end) with the reason in `status_note`."""
    with engine.begin() as connection:
        connection.execute(sql.query("recon/queries/run_outcome.sql"), {
            "run_id": run_id, "domain": domain, "outcome": RECOMPUTED, "note": note,
            "steps_pending": steps_pending, "finished_at": datetime.now(UTC)})


def finish_step(engine: Engine, run_id: str, domain: str) -> None:
    """One of the steps after the findings ended (the last one sets the run's status)."""
    with engine.begin() as connection:
        connection.execute(sql.query("recon/queries/run_step_finished.sql"),
                           {"run_id": run_id, "domain": domain, "finished_at": datetime.now(UTC)})


def mark_failed(engine: Engine, run_id: str, domain: str, error: str) -> bool:
    """The domain's run failed; False when it had already ended."""
    with engine.begin() as connection:
        marked = connection.execute(sql.query("recon/queries/run_failed.sql"), {
            "run_id": run_id, "domain": domain, "finished_at": datetime.now(UTC),
            "error": error[:MAX_ERROR_CHARS]}).scalars().all()
    return bool(marked)


def mark_run_failed(engine: Engine, run_id: str, error: str) -> list[str]:
    """Every domain of the run still `running` becomes `failed`; returns those domains."""
    with engine.begin() as connection:
        return sorted(connection.execute(sql.query("recon/queries/run_failed_all.sql"), {
            "run_id": run_id, "finished_at": datetime.now(UTC), "error": error[:MAX_ERROR_CHARS]}).scalars().all())


def unfinished_runs(engine: Engine, before: datetime, limit: int = 100) -> list[UnfinishedRun]:
    with engine.connect() as connection:
        rows = connection.execute(sql.query("recon/queries/runs_unfinished.sql"),
                                  {"before": before, "limit": limit}).mappings().all()
    return [UnfinishedRun(**row) for row in rows]
