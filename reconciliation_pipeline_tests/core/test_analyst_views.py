"""The analyst-grade SQL: money at stake by domain and asset, what changed between the last two
runs of a job, daily counts per partition and distinct entity, a severity order, and a comment
on everything in schema `recon`. Real PostgreSQL, real runs against the devnet."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.identities import DEVNET
from recon_demo.worlds.markets import MarketsWorld, build_markets_world, load_markets_into_ledger, write_markets_to_db
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.drift_store import IncidentPolicy, RunInfo, persist_domain_run
from reconciliation_pipeline.core.findings import findings_frame, with_domain
from reconciliation_pipeline.core.repairs import empty_plan
from reconciliation_pipeline.core.results import Checked, DomainDiff
from reconciliation_pipeline_tests.defs.markets.support import MARKETS_ASSETS, frequent_resources, run_frequent
from reconciliation_pipeline_tests.demo_runs import pipeline_environment, run_demo_jobs, seed_demo_world
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

MONEY = {("stream", "total"), ("stream", "released"), ("escrow", "escrow_balance"), ("user", "usdc_balance"),
         ("loan", "principal"), ("loan", "outstanding"), ("liquidity_position", "deposited"),
         ("amm_pool", "yes_liquidity"), ("amm_pool", "no_liquidity")}
"""What an analyst counts as money: amounts of an asset, in base units. Not scores, shares, days or odds."""


def units_of(base_units: int, decimals: int = 7) -> str:
    """Whole units as exact text (Decimal's default context would round past 28 digits)."""
    whole, fraction = divmod(base_units, 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}"


def test_money_at_stake_by_domain_and_asset_is_one_select_and_sums_only_amounts(
    monkeypatch: pytest.MonkeyPatch, database_url: str, engine: sa.Engine, ledger: DevnetLedger,
    devnet: DevnetServer, reference_time: datetime,
) -> None:
    seed_demo_world(engine, ledger, reference_time)
    pipeline_environment(monkeypatch, database_url, devnet.url)
    run_demo_jobs(dg.DagsterInstance.ephemeral(), reference_time)
    with engine.connect() as connection:
        # NUMERIC as text: pandas would read it as float and round it.
        view = connection.execute(sa.text(
            "SELECT domain, asset_code, asset_issuer, asset_contract_id, asset_decimals, amount_at_stake::text, "
            "amount_at_stake_units::text FROM recon.open_drift_amounts")).all()
        incidents = connection.execute(sa.text(
            "SELECT domain, entity_type, field, last_delta::text, asset_contract_id, amount_at_stake::text "
            "FROM recon.drift_incidents WHERE state <> 'resolved'")).all()
    money = [r for r in incidents if (r.entity_type, r.field) in MONEY]
    other = [r for r in incidents if (r.entity_type, r.field) not in MONEY]
    assert all(r.amount_at_stake is None and r.asset_contract_id is None for r in other)
    assert any(r.last_delta is not None for r in other)  # scores and streaks have deltas too: summing them is wrong
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in money:
        if row.last_delta is not None:
            expected[(row.domain, row.asset_contract_id)] += abs(Decimal(row.last_delta))
    assert {(r.domain, r.asset_contract_id): Decimal(r.amount_at_stake) for r in view} == dict(expected)
    assert {r.domain for r in view} == {"streams", "lending", "markets", "balances"}
    usdc = [r for r in view if r.asset_contract_id == DEVNET.usdc_contract_id]
    assert {(r.asset_code, r.asset_issuer) for r in usdc} == {("USDC", DEVNET.usdc_issuer)}
    eurc = [r for r in view if r.asset_contract_id == DEVNET.eurc_contract_id]
    assert [(r.domain, r.asset_code) for r in eurc] == [("streams", None)]  # a token known by its contract only
    assert {r.asset_decimals for r in view} == {7}
    for row in view:
        assert row.amount_at_stake_units == units_of(int(row.amount_at_stake))


def test_money_at_stake_stays_exact_at_the_i128_scale(engine: sa.Engine) -> None:
    huge = 2**126 + 12345
    index = pd.RangeIndex(2)
    findings = findings_frame(
        domain="streams", entity_type="stream", entity_id=pd.Series(["stream_1", "stream_2"], index=index),
        entity_key=pd.Series(["1", "2"], index=index), field="total", drift_class=DriftClass.VALUE_MISMATCH,
        severity=Severity.WARN, db_value="0", chain_value=str(huge), delta=pd.Series([huge, -huge], index=index,
                                                                                     dtype=object))
    findings = findings.assign(asset_contract_id=pd.Series([DEVNET.eurc_contract_id] * 2, index=index, dtype=object),
                               asset_decimals=pd.Series([7, 7], index=index, dtype=object),
                               amount_at_stake=pd.Series([huge, huge], index=index, dtype=object))
    persist_domain_run(engine, RunInfo("r1", "test", None), "streams",
                       DomainDiff(with_domain(findings, "streams"), Checked.none(), 1, None, empty_plan()),
                       started_at=datetime.now(UTC), policy=IncidentPolicy())
    with engine.connect() as connection:
        total, units = connection.execute(sa.text(
            "SELECT amount_at_stake::text, amount_at_stake_units::text FROM recon.open_drift_amounts")).one()
    assert int(total) == 2 * huge
    assert units == units_of(2 * huge)


@pytest.fixture
def markets(engine: sa.Engine, ledger: DevnetLedger) -> MarketsWorld:
    world = build_markets_world(30)
    write_markets_to_db(engine, world)
    load_markets_into_ledger(ledger, world)
    return world


def test_run_changes_list_what_the_latest_run_resolved_opened_and_still_found(
    markets: MarketsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    resources = frequent_resources(database_url, devnet.url)
    first = run_frequent(resources, MARKETS_ASSETS)
    with engine.begin() as connection:  # the app fixes market_4's outcome and breaks market_20's liquidity
        connection.execute(sa.text("UPDATE markets SET winning_outcome = 1, updated_at = now() WHERE id = 4"))
        connection.execute(sa.text(
            "UPDATE markets SET yes_liquidity = yes_liquidity + 7, updated_at = now() WHERE id = 20"))
    second = run_frequent(resources, MARKETS_ASSETS)
    with engine.connect() as connection:
        changes = pd.read_sql(sa.text(
            "SELECT run_id, previous_run_id, change, entity_id, field, drift_class FROM recon.run_changes "
            "WHERE domain = 'markets'"), connection)
        first_findings = set(connection.execute(sa.text(
            "SELECT entity_id || '/' || field FROM recon.discrepancies WHERE run_id = :r"),
            {"r": first.run_id}).scalars())
    assert set(changes["run_id"]) == {second.run_id} and set(changes["previous_run_id"]) == {first.run_id}
    by_change = {c: set(g["entity_id"] + "/" + g["field"]) for c, g in changes.groupby("change")}
    assert by_change["resolved"] == {"market_4/winning_outcome"}
    assert by_change["new"] == {"market_20/yes_liquidity"}
    assert by_change["still_open"] == first_findings - {"market_4/winning_outcome"}


def test_daily_counts_count_each_partition_once_per_distinct_entity_and_severity_sorts_critical_first(
    markets: MarketsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    resources = frequent_resources(database_url, devnet.url)
    runs = [run_frequent(resources, MARKETS_ASSETS, instance=dg.DagsterInstance.ephemeral()) for _ in range(3)]
    with engine.connect() as connection:
        daily = pd.read_sql(sa.text("SELECT * FROM recon.daily_drift_counts WHERE domain = 'markets'"), connection)
        per_run = pd.read_sql(sa.text(
            "SELECT run_id, entity_id, field, drift_class, severity FROM recon.discrepancies WHERE domain = 'markets'"),
            connection)
        ordered = connection.execute(sa.text(
            "SELECT severity FROM recon.open_incidents ORDER BY recon.severity_rank(severity), incident_id")
        ).scalars().all()
    assert set(per_run["run_id"]) == {r.run_id for r in runs}
    assert daily["partition_key"].isna().all()  # the 5-minute runs have no partition
    assert daily["finding_rows"].sum() == len(per_run)  # every repeat, as before
    assert daily["runs"].max() == 3
    groups = per_run.groupby(["drift_class", "severity"])
    assert daily.set_index(["drift_class", "severity"])["entities"].to_dict() == groups["entity_id"].nunique().to_dict()
    distinct = per_run.drop_duplicates(["entity_id", "field"])
    assert daily["distinct_findings"].sum() == len(distinct) < len(per_run)
    assert ordered[:2] == ["CRITICAL", "CRITICAL"] and set(ordered[2:]) == {"WARN"}
    assert sorted(ordered, key=["CRITICAL", "WARN", "INFO"].index) == ordered


def test_every_recon_table_view_column_and_function_has_a_comment(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        relations = connection.execute(sa.text(
            "SELECT c.relname FROM pg_class AS c WHERE c.relnamespace = 'recon'::regnamespace "
            "AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL")).scalars().all()
        columns = connection.execute(sa.text(
            "SELECT c.relname || '.' || a.attname FROM pg_class AS c "
            "JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE c.relnamespace = 'recon'::regnamespace AND c.relkind IN ('r', 'v') "
            "AND col_description(c.oid, a.attnum) IS NULL")).scalars().all()
        functions = connection.execute(sa.text(
            "SELECT p.proname FROM pg_proc AS p WHERE p.pronamespace = 'recon'::regnamespace "
            "AND obj_description(p.oid, 'pg_proc') IS NULL")).scalars().all()
        counted = connection.execute(sa.text(
            "SELECT count(*) FROM pg_attribute AS a JOIN pg_class AS c ON a.attrelid = c.oid "
            "WHERE c.relnamespace = 'recon'::regnamespace AND c.relkind IN ('r', 'v') AND a.attnum > 0")).scalar_one()
    assert (relations, columns, functions) == ([], [], [])
    assert counted > 300  # the query does look at every column
