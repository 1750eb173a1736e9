"""Compare-and-swap repairs against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.identities import DEVNET, account_id
from reconciliation_pipeline.core import repairs, sql
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.drift_store import RunInfo
from reconciliation_pipeline.core.findings import findings_frame
from reconciliation_pipeline.defs.streams.spec import STREAM

RUN = RunInfo(run_id="run-1", job_name="test", partition_key="2026-11-20")


def _insert_stream(engine: sa.Engine, stream_id: int, released: int, status: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO streams (id, sender_address, recipient_address, token_address, total_amount,"
                " released_amount, status, created_at) VALUES (:id, :s, :r, :t, :total, :released, :status, :at)"
            ),
            {"id": stream_id, "s": account_id("s"), "r": account_id("r"), "t": DEVNET.usdc_contract_id,
             "total": 10**30, "released": released, "status": status, "at": datetime(2026, 1, 1, tzinfo=UTC)},
        )


def _findings(rows: list[tuple[int, str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["key", "field", "db_value", "chain_value"], dtype=object)
    return findings_frame(
        domain="streams",
        entity_type="stream",
        entity_id="stream_" + frame["key"].astype(str),
        entity_key=frame["key"].astype(str),
        field=frame["field"],
        drift_class=frame["field"].map(
            lambda f: DriftClass.STATUS_MISMATCH.value if f == "status" else DriftClass.VALUE_MISMATCH.value
        ),
        severity=Severity.WARN,
        db_value=frame["db_value"],
        chain_value=frame["chain_value"],
    )


def _stream(engine: sa.Engine, stream_id: int) -> tuple[str, str]:
    with engine.connect() as connection:
        return tuple(connection.execute(
            sa.text("SELECT released_amount::text, status FROM streams WHERE id = :id"), {"id": stream_id}
        ).one())


def test_concurrent_application_write_wins_and_the_repair_is_recorded_skipped(engine: sa.Engine) -> None:
    big = 2**126 + 7
    _insert_stream(engine, 1, released=big, status="active")
    _insert_stream(engine, 2, released=5, status="active")
    plan = repairs.plan_field_repairs("streams", STREAM,
        _findings([(1, "released", str(big), str(big + 1)), (2, "status", "active", "paused")]),
    )
    repairs.record_plan(engine, RUN, "streams", plan)
    with engine.begin() as connection:  # the application writes between snapshot and repair
        connection.execute(sa.text("UPDATE streams SET status = 'cancelled' WHERE id = 2"))

    outcome = repairs.apply_plan(engine, RUN, plan)

    assert (outcome.applied, outcome.skipped, outcome.failed) == (1, 1, 0)
    assert _stream(engine, 1) == (str(big + 1), "active")
    assert _stream(engine, 2) == ("5", "cancelled")
    with engine.connect() as connection:
        audit = connection.execute(
            sa.text("SELECT r.entity_id, a.action, a.before_value, a.after_value FROM recon.repair_audit a"
                    " JOIN recon.repairs r USING (repair_id) ORDER BY r.entity_id")
        ).all()
        reason = connection.execute(sa.text("SELECT reason FROM recon.repairs WHERE state = 'skipped'")).scalar_one()
    assert audit == [("stream_1", "applied", str(big), str(big + 1)), ("stream_2", "skipped", "active", None)]
    assert "application's write wins" in reason


def test_planning_and_applying_twice_changes_nothing_twice(engine: sa.Engine) -> None:
    _insert_stream(engine, 1, released=10, status="active")
    plan = repairs.plan_field_repairs("streams", STREAM, _findings([(1, "released", "10", "12")]))
    for _ in range(2):
        repairs.record_plan(engine, RUN, "streams", plan)
        repairs.apply_plan(engine, RUN, plan)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM recon.repairs")).scalar_one() == 1
        assert connection.execute(sa.text("SELECT count(*) FROM recon.repair_audit")).scalar_one() == 1
    assert _stream(engine, 1)[0] == "12"


def test_only_repairable_fields_of_the_non_authoritative_side_are_planned() -> None:
    findings = _findings([(1, "total", "1", "2"), (2, "released", "1", "2"), (3, "status", "active", "paused")])
    plan = repairs.plan_field_repairs("streams", STREAM, findings)
    assert sorted(plan["field"]) == ["released", "status"]
    assert set(plan["repair_query"]) == {"repairs/streams/released.sql", "repairs/streams/status.sql"}


def test_a_failing_repair_is_recorded_and_does_not_stop_the_others(engine: sa.Engine) -> None:
    _insert_stream(engine, 1, released=10, status="active")
    _insert_stream(engine, 2, released=10, status="active")
    plan = repairs.plan_field_repairs("streams", STREAM, _findings([(1, "released", "10", "not-a-number"), (2, "released", "10", "11")])
    )
    repairs.record_plan(engine, RUN, "streams", plan)
    outcome = repairs.apply_plan(engine, RUN, plan)
    assert (outcome.applied, outcome.failed) == (1, 1)
    assert _stream(engine, 2)[0] == "11"
    with engine.connect() as connection:
        failed = connection.execute(sa.text("SELECT entity_id, reason FROM recon.repairs WHERE state = 'failed'")).one()
    assert failed[0] == "stream_1" and "not-a-number" in failed[1]


def test_a_planted_repair_row_runs_nothing_and_is_recorded_refused(engine: sa.Engine, tmp_path: Path) -> None:
    """Someone with write access to recon.repairs plants the row a run will plan, with its
    predictable idempotency key, their own query path and their own target: nothing of it runs."""
    _insert_stream(engine, 1, released=10, status="active")
    evil = tmp_path / "evil.sql"
    evil.write_text("UPDATE streams SET total_amount = 1")
    plan = repairs.plan_field_repairs("streams", STREAM, _findings([(1, "released", "10", "12")]))
    planted = {**plan.iloc[0].to_dict(), "repair_query": f"../../../../../../..{evil}", "target_value": "1"}
    with engine.begin() as connection:
        connection.execute(sql.query("recon/queries/insert_repair_plan.sql"),
                           {"run_id": "planted", "domain": "streams", **planted})
    repairs.record_plan(engine, RUN, "streams", plan)  # the same key: the planted row stays
    outcome = repairs.apply_plan(engine, RUN, plan)
    assert (outcome.applied, outcome.refused, outcome.failed) == (0, 1, 0)
    assert _stream(engine, 1) == ("10", "active")
    with engine.connect() as connection:
        total = connection.execute(sa.text("SELECT total_amount::text FROM streams WHERE id = 1")).scalar_one()
        state, reason = connection.execute(sa.text("SELECT state, reason FROM recon.repairs")).one()
        audit = connection.execute(sa.text("SELECT action FROM recon.repair_audit")).scalars().all()
    assert total == str(10**30)
    assert state == "refused" and "repair_query" in reason and "target_value" in reason
    assert audit == ["refused"]


@pytest.mark.parametrize("path", ["../../evil.sql", "/etc/passwd.sql", "recon/../../../x.sql", "recon/queries/x.txt"])
def test_sql_paths_outside_the_folder_are_refused(path: str) -> None:
    with pytest.raises(sql.SqlPathError):
        sql.read_sql(path)
