"""Every job handles an empty side: a fresh deployment, and a backfill of a day before anything existed.

A fresh deployment has no rows and no entries; a backfill of an early day has entries on chain
but nothing in the day's database window. Either is a successful run that checked nothing
(or only what exists), never a crash on a column-less frame.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from recon_demo.worlds.streams import build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.core.cadences import SHARD_COUNT
from reconciliation_pipeline.definitions import defs as load_defs
from soroban_devnet.ledger import DevnetLedger

PARTITIONED_JOBS = ("nightly_reconciliation", "streak_reconciliation")
UNPARTITIONED_JOBS = ("markets_balances_reconciliation", "lending_sweep", "streams_incremental")


def _run(job_name: str, partition: str | None, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    return load_defs().resolve_job_def(job_name).execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(), partition_key=partition, raise_on_error=False)


def _failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """Each failed step's error with its causes (the step error wraps the one that matters)."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.event_specific_data is not None:
            error = event.event_specific_data.error
            chain = []
            while error is not None:
                chain.append(error.message.strip())
                error = error.cause
            messages.append(" <- ".join(chain))
    return messages


def _counts(engine: sa.Engine) -> tuple[int, set[str]]:
    with engine.connect() as connection:
        findings = connection.execute(sa.text("SELECT count(*) FROM recon.discrepancies")).scalar_one()
        statuses = set(connection.execute(sa.text("SELECT DISTINCT status FROM recon.runs")).scalars())
    return findings, statuses


@pytest.mark.parametrize("job_name", PARTITIONED_JOBS + UNPARTITIONED_JOBS)
def test_every_job_succeeds_with_both_sides_empty(
    pipeline_env: None, engine: sa.Engine, job_name: str, yesterday: str
) -> None:
    result = _run(job_name, yesterday if job_name in PARTITIONED_JOBS else None)
    assert result.success, _failures(result)
    findings, statuses = _counts(engine)
    assert findings == 0
    assert statuses <= {"succeeded"}


def test_the_sharded_sweep_and_its_escrow_succeed_on_empty_shards(
    pipeline_env: None, engine: sa.Engine, yesterday: str
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    for shard in range(SHARD_COUNT):
        result = _run("streams_sharded_sweep", f"{yesterday}|{shard}", instance)
        assert result.success, _failures(result)
    escrow = _run("streams_sharded_escrow", yesterday, instance)
    assert escrow.success, _failures(escrow)
    assert _counts(engine) == (0, {"succeeded"})


def test_a_nightly_run_of_a_day_before_any_stream_existed_succeeds(
    pipeline_env: None, engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime, yesterday: str
) -> None:
    """The day's database window holds no stream; the chain holds the world's streams."""
    world = build_streams_world(30, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE streams SET created_at = :now"), {"now": reference_time})
    result = _run("nightly_reconciliation", yesterday)
    assert result.success, _failures(result)
    assert result.output_for_node("db_streams").frame.empty
    chain = result.output_for_node("chain_streams").frame
    escrow = result.output_for_node("chain_stream_escrow")
    # Only streams the chain's events name before the day's end are read; escrow covers their tokens.
    assert set(escrow.frame["token"]) == set(chain.loc[chain["read_status"] == "ok", "token"])
