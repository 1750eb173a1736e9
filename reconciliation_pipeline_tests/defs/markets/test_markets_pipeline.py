"""The markets reconciliation end to end: real PostgreSQL, the devnet over HTTP,
in-process Dagster runs of the real assets."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from recon_demo.worlds.markets import MarketsWorld, build_markets_world, load_markets_into_ledger, write_markets_to_db
from reconciliation_pipeline_tests.defs.markets.support import (
    MARKETS_ASSETS,
    as_set,
    frequent_resources,
    persisted_findings,
    run_frequent,
)
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

N_MARKETS = 260


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger) -> MarketsWorld:
    world = build_markets_world(N_MARKETS)
    write_markets_to_db(engine, world)
    load_markets_into_ledger(ledger, world)
    return world


def test_first_run_reports_exactly_the_injected_catalogue(
    world: MarketsWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    ledger.reset_counters()
    result = run_frequent(frequent_resources(database_url, devnet.url), MARKETS_ASSETS)
    found = persisted_findings(engine, result.run_id)
    assert as_set(found) == as_set(world.expected_findings())
    assert len(found) == len(world.expected_findings())
    # pools and contracts: 260 keys each, 200 per request
    assert ledger.request_counts["getLedgerEntries"] == 2 + 2
    odds = found[found["field"] == "odds"].iloc[0]
    assert odds["details"]["title"] == world.db.set_index("market_id").at[2, "title"]
    assert odds["details"]["contract_address"] == world.db.set_index("market_id").at[2, "contract_address"]
    assert odds["details"]["db_odds"] == {"yes": 0.5, "no": 0.5}
    assert odds["details"]["chain_odds"] == {"yes": 0.4, "no": 0.6}
    assert odds["details"]["market_id"] == 2
    critical = found[found["severity"] == "CRITICAL"]
    assert set(critical["entity_id"]) == {"market_4", "market_11"}
    undecodable = found[found["drift_class"] == "CHAIN_READ_ERROR"].iloc[0]
    assert undecodable["details"]["raw_xdr"] == world.undecodable_pools[10]
    with engine.connect() as connection:
        status = connection.execute(sa.text("SELECT status FROM recon.runs WHERE run_id = :r AND domain = 'markets'"),
                                    {"r": result.run_id}).scalar_one()
    assert status == "partial"  # market 10's pool could not be decoded
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert check["no_critical_drift"].passed is False


def test_an_empty_app_reconciles_to_nothing_without_chain_requests(
    database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    result = run_frequent(frequent_resources(database_url, devnet.url))
    assert result.success
    assert persisted_findings(engine, result.run_id).empty
    assert ledger.request_counts["getLedgerEntries"] == 0
    with engine.connect() as connection:
        runs = connection.execute(sa.text("SELECT domain, status FROM recon.runs WHERE run_id = :r ORDER BY domain"),
                                  {"r": result.run_id}).all()
    assert runs == [("balances", "succeeded"), ("markets", "succeeded")]


def test_a_second_run_appends_its_findings_and_confirms_the_incidents(
    world: MarketsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    resources = frequent_resources(database_url, devnet.url)
    first = run_frequent(resources, MARKETS_ASSETS)
    second = run_frequent(resources, MARKETS_ASSETS)
    found = persisted_findings(engine)
    each = len(world.expected_findings())
    assert found.groupby("run_id").size().to_dict() == {first.run_id: each, second.run_id: each}
    assert set(found["partition_key"].dropna()) == set()
    with engine.connect() as connection:
        states = connection.execute(sa.text("SELECT DISTINCT state, consecutive_runs FROM recon.drift_incidents")).all()
    assert states == [("confirmed", 2)]
