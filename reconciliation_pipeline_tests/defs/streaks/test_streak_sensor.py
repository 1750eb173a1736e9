"""The streak sensor: a cursor over projection changes and arriving sessions, and
the scoped run it launches (reconciliation and sync for the changed users)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from recon_demo.worlds.streaks import StreaksWorld
from reconciliation_pipeline.core.cadences import daily_partitions
from reconciliation_pipeline.defs.streaks.definitions import STREAKS, streak_change_sensor
from reconciliation_pipeline.resources import PostgresResource
from reconciliation_pipeline_tests.defs.streaks.conftest import streak_resources
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer
from soroban_devnet.streaks_contract import StreakContract


def tick(database_url: str, cursor: str | None) -> dg.SensorResult:
    postgres = PostgresResource(database_url=database_url)
    with dg.build_sensor_context(cursor=cursor, resources={"postgres": postgres}) as context:
        return streak_change_sensor(context)


def add_session(engine: sa.Engine, session_id: str, user_id: int, received_at: datetime | None = None) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO focus_sessions (id, user_id, started_at, ended_at, received_at) "
                    "VALUES (:id, :u, now() - interval '3 hours', now() - interval '2 hours', coalesce(:r, now()))"),
            {"id": session_id, "u": user_id, "r": received_at},
        )


def test_the_sensor_launches_a_scoped_live_run_for_changed_users_once(
    world: StreaksWorld, contract: StreakContract, database_url: str, engine: sa.Engine,
) -> None:
    first = tick(database_url, None)
    assert not first.run_requests and first.cursor is not None

    late, steady = world.by_name("late_session"), world.by_name("steady_today")
    add_session(engine, "sensor-1", late.user_id)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE user_streaks SET updated_at = now() WHERE user_id = :u"), {"u": steady.user_id})
    second = tick(database_url, first.cursor)
    [request] = second.run_requests
    assert request.partition_key == daily_partitions.get_last_partition_key()
    assert request.run_config["ops"]["db_user_streaks"]["config"]["only_keys"] == [
        str(u) for u in sorted([late.user_id, steady.user_id])]
    assert request.run_key

    third = tick(database_url, second.cursor)
    assert not third.run_requests  # the same changes, re-read within the overlap, are not launched again

    # A transaction that committed late: its timestamp is older than the cursor's mark, within the overlap.
    mark = datetime.fromisoformat(json.loads(third.cursor)["high_water"])
    other = world.by_name("behind_on_chain")
    add_session(engine, "sensor-2", other.user_id, received_at=mark - timedelta(seconds=30))
    fourth = tick(database_url, third.cursor)
    [late_commit] = fourth.run_requests
    assert late_commit.run_config["ops"]["db_user_streaks"]["config"]["only_keys"] == [str(other.user_id)]
    assert late_commit.run_key != request.run_key


def test_the_launched_run_reconciles_and_syncs_only_the_changed_users(
    world: StreaksWorld, contract: StreakContract, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer,
) -> None:
    cursor = tick(database_url, None).cursor
    late = world.by_name("late_session")
    with engine.begin() as connection:  # the app rewrote the user's projection row
        connection.execute(sa.text("UPDATE user_streaks SET updated_at = now() WHERE user_id = :u"), {"u": late.user_id})
    [request] = tick(database_url, cursor).run_requests

    result = dg.materialize(STREAKS.assets("nightly"), partition_key=request.partition_key, run_config=request.run_config,
                            resources=streak_resources(database_url, devnet.url, enabled=True))
    assert list(result.output_for_node("db_user_streaks").frame["user_id"]) == [late.user_id]
    with engine.connect() as connection:
        syncs = pd.read_sql(sa.text("SELECT player_address, streak_value, status FROM recon.streak_syncs"), connection)
    assert syncs.values.tolist() == [[late.wallet, late.truth.current_streak, "success"]]
    assert contract.profile(late.wallet)["current_streak"] == late.truth.current_streak
    assert ledger.request_counts["sendTransaction"] == 1


def test_the_job_and_sensor_load_into_definitions(database_url: str, devnet: DevnetServer) -> None:
    defs = dg.Definitions.merge(STREAKS.definitions, dg.Definitions(
        sensors=[streak_change_sensor], resources=streak_resources(database_url, devnet.url)))
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("streak_reconciliation")
    assert job.partitions_def == daily_partitions
    assert defs.resolve_sensor_def("streak_change_sensor").default_status == dg.DefaultSensorStatus.RUNNING
