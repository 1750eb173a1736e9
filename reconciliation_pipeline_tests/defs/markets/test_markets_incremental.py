"""Incremental markets runs (`core.entry_versions`): real PostgreSQL, the devnet over HTTP,
in-process Dagster runs. Pools and market contracts compared before at the same
`last_modified_ledger` are skipped; the run finds the same drift as a full sweep."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from recon_demo.worlds.markets import (
    MarketsWorld,
    build_markets_world,
    load_markets_into_ledger,
    market_instance_entry,
    pool_entry,
    write_markets_to_db,
)
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, INCREMENTAL_SWEEP, SWEEP_TAG
from reconciliation_pipeline_tests.defs.markets.support import (
    MARKETS_ASSETS,
    asset_metadata,
    frequent_resources,
    incident_keys,
    persisted_findings,
    unresolved_incidents,
)
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

N_MARKETS = 260


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger) -> MarketsWorld:
    """The seeded world; the app last wrote its rows a day ago."""
    world = build_markets_world(N_MARKETS)
    write_markets_to_db(engine, world)
    load_markets_into_ledger(ledger, world)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE markets SET updated_at = now() - interval '1 day'"))
    return world


def run(resources: dict[str, object], **tags: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(MARKETS_ASSETS, resources=resources, tags=tags, raise_on_error=True)


def open_market_ids(world: MarketsWorld, entity_type: str, engine: sa.Engine) -> set[int]:
    return {int(entity_id.removeprefix("market_"))
            for kind, entity_id, *_ in unresolved_incidents(engine, "markets") if kind == entity_type}


def test_incremental_run_skips_unchanged_entries_and_finds_what_a_full_sweep_finds(
    world: MarketsWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    resources = frequent_resources(database_url, devnet.url)
    first = run(resources)
    assert asset_metadata(first, "chain_market_pools")["sweep_mode"] == FULL_SWEEP
    assert unresolved_incidents(engine, "markets") == incident_keys(world.expected_findings())
    pool_incidents = open_market_ids(world, "amm_pool", engine)
    market_incidents = open_market_ids(world, "market", engine)

    ledger.close_ledger()
    amm = world.identities.amm_contract_id
    db = world.db.set_index("market_id")
    ledger.put_raw_entry(*pool_entry(amm, 2, 5_000_000_000, 5_000_000_000))  # the pool catches up: fixed
    ledger.put_raw_entry(*pool_entry(amm, 30, int(db.at[30, "yes_liquidity"]) * 2, int(db.at[30, "no_liquidity"])))
    open_market = next(m for m in range(31, N_MARKETS) if db.at[m, "status"] == "open")
    ledger.put_raw_entry(*market_instance_entry(db.at[open_market, "contract_address"], "closed", None))
    with engine.begin() as connection:  # the app writes a liquidity the pool does not have
        connection.execute(sa.text("UPDATE markets SET no_liquidity = no_liquidity + 1000000000, "
                                   "updated_at = now() WHERE id = 40"))
    second = run(resources)

    pools = asset_metadata(second, "chain_market_pools")
    contracts = asset_metadata(second, "chain_market_contracts")
    assert pools["sweep_mode"] == contracts["sweep_mode"] == INCREMENTAL_SWEEP
    pool_entries = len(world.pools) + len(world.undecodable_pools)
    # decoded again: pools 2 and 30 (modified), 40 (row changed), those with open incidents;
    # market 10's undecodable pool is never recorded, so it is read again like a change
    compared_pools = ({2, 30, 40} | pool_incidents) & (set(world.pools["market_id"]) | {10})
    assert pools["entries_unchanged"] == pool_entries - len(compared_pools)
    compared_contracts = ({open_market, 40} | market_incidents) & set(world.contracts["market_id"])
    assert contracts["entries_unchanged"] == len(world.contracts) - len(compared_contracts)

    found = persisted_findings(engine, second.run_id)
    new = set(found["entity_id"]) - {e for _, e, *_ in incident_keys(world.expected_findings())}
    assert new == {"market_30", f"market_{open_market}", "market_40"}
    assert "market_2" not in set(found.loc[found["entity_type"] == "amm_pool", "entity_id"])
    incremental_view = unresolved_incidents(engine, "markets")

    full = run(resources, **{SWEEP_TAG: FULL_SWEEP})
    assert asset_metadata(full, "chain_market_pools")["entries_unchanged"] == 0
    assert incident_keys(persisted_findings(engine, full.run_id)) == incremental_view
    assert unresolved_incidents(engine, "markets") == incremental_view
