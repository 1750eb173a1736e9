"""The Definitions object: what it holds, how it is wired, and how it fails on bad configuration."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from recon_demo.worlds.streams import build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.core.cadences import daily_partitions, daily_sharded_partitions
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, SWEEP_TAG
from reconciliation_pipeline.definitions import defs as load_defs
from reconciliation_pipeline.localenv import PROJECT_ROOT
from reconciliation_pipeline.production import op_config_fields
from reconciliation_pipeline.settings import ENV_SETTINGS, render_env_example
from soroban_devnet.ledger import DevnetLedger

ASSET_GRAPH = {
    "chain_liquidity_positions": {"db_liquidity_positions", "lending_events"},
    "chain_loans": {"db_loans", "lending_events"},
    "chain_market_contracts": {"db_markets", "market_sweep_plan"},
    "chain_market_pools": {"db_markets", "market_sweep_plan"},
    "chain_player_profiles": {"computed_user_streaks"},
    "chain_reputation": {"db_reputation", "lending_events"},
    "chain_stream_escrow": {"chain_streams", "db_streams"},
    "chain_stream_escrow_sharded": {"chain_streams_shard", "db_streams_shard"},
    "chain_streams": {"db_streams"},
    "chain_streams_incremental": {"db_streams_incremental", "stream_changes"},
    "chain_streams_shard": {"db_streams_shard"},
    "chain_usdc_balances": {"db_usdc_balances", "usdc_movements"},
    "computed_user_streaks": {"db_user_streaks"},
    "db_liquidity_positions": set(),
    "db_loans": set(),
    "db_markets": {"market_sweep_plan"},
    "db_reputation": set(),
    "db_streams": set(),
    "db_streams_incremental": {"stream_changes"},
    "db_streams_shard": set(),
    "db_usdc_balances": {"usdc_movements"},
    "db_user_streaks": set(),
    "lending_discrepancies": {"chain_liquidity_positions", "chain_loans", "chain_reputation", "db_liquidity_positions", "db_loans", "db_reputation", "lending_events", "pending_lending_transactions", "provisional_loans"},
    "lending_events": set(),
    "lending_repairs": {"lending_discrepancies"},
    "lending_sweep_discrepancies": {"pending_lending_transactions", "provisional_loans"},
    "lending_sweep_repairs": {"lending_sweep_discrepancies"},
    "market_discrepancies": {"chain_market_contracts", "chain_market_pools", "db_markets", "market_sweep_plan"},
    "market_sweep_plan": set(),
    "pending_lending_transactions": set(),
    "provisional_loans": set(),
    "streak_discrepancies": {"chain_player_profiles", "computed_user_streaks", "db_user_streaks"},
    "streak_syncs": {"streak_discrepancies"},
    "stream_changes": set(),
    "stream_discrepancies": {"chain_stream_escrow", "chain_streams", "db_streams"},
    "stream_escrow_discrepancies": {"chain_stream_escrow_sharded"},
    "stream_incremental_discrepancies": {"chain_streams_incremental", "db_streams_incremental", "stream_changes"},
    "stream_repairs": {"stream_discrepancies"},
    "stream_shard_discrepancies": {"chain_streams_shard", "db_streams_shard"},
    "stream_shard_repairs": {"stream_shard_discrepancies"},
    "usdc_balance_discrepancies": {"chain_usdc_balances", "db_usdc_balances", "usdc_movements"},
    "usdc_movements": set(),
    "user_streak_repairs": {"streak_discrepancies"},
}
GROUPS = {"streams", "streams_sharded", "streams_incremental", "lending", "lending_sweep", "markets", "balances", "streaks"}
CHECKS = {
    "chain_liquidity_positions:position_invariants",
    "chain_loans:loan_invariants",
    "chain_market_contracts:contract_invariants",
    "chain_market_pools:pool_invariants",
    "chain_reputation:reputation_invariants",
    "chain_stream_escrow:escrow_solvency",
    "chain_stream_escrow_sharded:escrow_solvency",
    "chain_streams:escrow_invariants",
    "chain_streams_incremental:escrow_invariants",
    "chain_streams_shard:escrow_invariants",
    "chain_usdc_balances:balance_invariants",
    "db_liquidity_positions:position_invariants",
    "db_loans:loan_invariants",
    "db_markets:market_invariants",
    "db_reputation:reputation_invariants",
    "db_streams:escrow_invariants",
    "db_streams_incremental:escrow_invariants",
    "db_streams_shard:escrow_invariants",
    "db_usdc_balances:balance_invariants",
    "db_user_streaks:projection_invariants",
    "lending_discrepancies:chain_values_copyable",
    "lending_discrepancies:no_critical_drift",
    "lending_events:events_follow_layout",
    "lending_sweep_discrepancies:no_critical_drift",
    "market_discrepancies:no_critical_drift",
    "streak_discrepancies:no_critical_drift",
    "stream_discrepancies:chain_values_copyable",
    "stream_discrepancies:no_critical_drift",
    "stream_escrow_discrepancies:no_critical_drift",
    "stream_incremental_discrepancies:no_critical_drift",
    "stream_shard_discrepancies:chain_values_copyable",
    "stream_shard_discrepancies:no_critical_drift",
    "usdc_balance_discrepancies:no_critical_drift",
}



defs = load_defs()


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


def test_asset_graph_snapshot() -> None:
    graph = defs.resolve_asset_graph()
    actual = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert actual == ASSET_GRAPH
    assert {graph.get(k).group_name for k in graph.get_all_asset_keys()} == GROUPS
    assert {f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys} == CHECKS


def test_each_resource_is_bound_once_from_the_environment() -> None:
    assert set(defs.resources) == {
        "postgres", "soroban_rpc", "contracts", "settings", "alerting", "pushgateway", "streak_oracle", "io_manager",
    }


def test_markets_and_balances_run_every_five_minutes() -> None:
    schedule = defs.resolve_schedule_def("markets_balances_every_5_minutes")
    assert schedule.cron_schedule == "*/5 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "markets_balances_reconciliation"


def test_markets_and_balances_are_swept_in_full_nightly_and_incrementally_otherwise() -> None:
    frequent = defs.resolve_schedule_def("markets_balances_every_5_minutes")
    nightly = defs.resolve_schedule_def("markets_balances_nightly_full_sweep")
    assert (nightly.cron_schedule, nightly.job_name) == ("30 2 * * *", "markets_balances_reconciliation")
    assert nightly.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 22, 2, 30, tzinfo=UTC))
    (full,) = nightly.evaluate_tick(context).run_requests or []
    (incremental,) = frequent.evaluate_tick(context).run_requests or []
    assert full.tags[SWEEP_TAG] == FULL_SWEEP
    assert SWEEP_TAG not in incremental.tags


def test_alert_sensors_are_registered() -> None:
    assert {s.name for s in defs.sensors} == {"drift_incident_alerts", "run_failure_alerts", "streak_change_sensor",
                                             "unfinished_run_alerts"}


def test_lending_sweep_runs_every_five_minutes() -> None:
    schedule = defs.resolve_schedule_def("lending_sweep_schedule")
    assert schedule.cron_schedule == "*/5 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "lending_sweep"


def test_nightly_schedule_runs_at_0200_utc_for_the_previous_day() -> None:
    schedule = defs.resolve_schedule_def("nightly_reconciliation_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone in (None, "UTC")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 21, 2, 0, tzinfo=UTC))
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2026-11-20"]


def test_env_example_documents_every_variable_with_its_default() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    assert text == render_env_example(), "regenerate it: .venv/bin/recon env-example > .env.example"
    documented = dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", text, flags=re.M))
    assert set(documented) == {s.name for s in ENV_SETTINGS}
    for setting in ENV_SETTINGS:
        if setting.default != "(embedded)":
            assert documented[setting.name] == setting.default


def test_nightly_job_runs_from_the_environment(
    pipeline_env: None, engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime, yesterday: str
) -> None:
    world = build_streams_world(30, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    result = defs.resolve_job_def("nightly_reconciliation").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=yesterday
    )
    assert result.success
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM recon.discrepancies")).scalar_one()
    assert count == len(world.expected_findings())


def test_an_invalid_contract_id_fails_the_run_at_start_naming_the_variable(
    pipeline_env: None, monkeypatch: pytest.MonkeyPatch, yesterday: str
) -> None:
    monkeypatch.setenv("STREAM_CONTRACT_ID", "not-a-contract")
    result = defs.resolve_job_def("nightly_reconciliation").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=yesterday, raise_on_error=False
    )
    assert not result.success
    messages = " ".join(
        str(e.event_specific_data.error.message)
        for e in result.all_events
        if e.is_failure and e.event_specific_data is not None and getattr(e.event_specific_data, "error", None)
    )
    assert "STREAM_CONTRACT_ID" in messages


def test_a_missing_variable_fails_naming_it(pipeline_env: None, monkeypatch: pytest.MonkeyPatch, yesterday: str) -> None:
    monkeypatch.delenv("SOROBAN_RPC_URL")
    with pytest.raises(Exception, match="SOROBAN_RPC_URL"):
        defs.resolve_job_def("nightly_reconciliation").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), partition_key=yesterday
        )


def test_readme_lists_every_variable() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert [s.name for s in ENV_SETTINGS if f"`{s.name}`" not in readme] == []


def test_readme_lists_every_run_config_option_of_every_job() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("### Run config"):readme.index("If your tables are named differently")]
    unlisted = [(job.name, op, option) for job in defs.jobs
                for op, options in op_config_fields(defs.resolve_job_def(job.name)).items() for option in options
                if f"`{option}`" not in section
                or (f"`{op}`" not in section and not (op.startswith("db_") and "`db_*`" in section))]
    assert unlisted == []


def test_the_sharded_sweep_runs_per_day_and_shard_and_has_no_schedule() -> None:
    assert defs.resolve_job_def("streams_sharded_sweep").partitions_def == daily_sharded_partitions
    assert defs.resolve_job_def("streams_sharded_escrow").partitions_def == daily_partitions
    scheduled = {defs.resolve_schedule_def(s.name).job_name for s in defs.schedules}
    assert not scheduled & {"streams_sharded_sweep", "streams_sharded_escrow"}


def test_incremental_streams_run_every_5_minutes() -> None:
    schedule = defs.resolve_schedule_def("streams_incremental_every_5_minutes")
    assert schedule.cron_schedule == "*/5 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "streams_incremental"
