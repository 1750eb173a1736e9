"""Incremental balances runs (`core.entry_versions`): real PostgreSQL, the devnet over
HTTP, in-process Dagster runs. The every-5-minutes run reads every holding but decodes
and diffs only what changed, and finds the same drift as a full sweep of the same state."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from reconciliation_pipeline.core.entry_versions import FULL_SWEEP, SWEEP_TAG
from reconciliation_pipeline.defs.balances.assets import BALANCES_ASSETS
from reconciliation_pipeline.devnet.balances_world import BalancesWorld, build_balances_world, user_id
from reconciliation_pipeline.devnet.encode import sac_balance_entry
from reconciliation_pipeline.devnet.ledger import DevnetLedger, FaultConfig
from reconciliation_pipeline.devnet.markets_seed import load_balances_into_ledger, trustline_entry, write_balances_to_db
from reconciliation_pipeline.devnet.server import DevnetServer
from reconciliation_pipeline_tests.defs.markets.support import (
    asset_metadata,
    frequent_resources,
    incident_keys,
    persisted_findings,
    unresolved_incidents,
)

N_USERS = 300
FINDING_USERS = {2, 4, 6, 8, 9, 11}
"""Users the world's catalogue gives a finding (user 5's invalid wallet is never read)."""


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger) -> BalancesWorld:
    """The seeded world; the app last wrote its rows a day ago."""
    world = build_balances_world(N_USERS)
    write_balances_to_db(engine, world)
    load_balances_into_ledger(ledger, world)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET updated_at = now() - interval '1 day'"))
    return world


def run(resources: dict[str, object], **tags: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(BALANCES_ASSETS, resources=resources, tags=tags, raise_on_error=True)


def set_chain_balance(ledger: DevnetLedger, world: BalancesWorld, k: int, amount: int) -> None:
    """The holder of user k receives or spends USDC: its entry is rewritten in the latest ledger."""
    wallet = world.db.set_index("user_id").at[user_id(k), "wallet_address"]
    ids = world.identities
    if wallet.startswith("G"):
        ledger.put_raw_entry(*trustline_entry(wallet, ids.usdc_asset_code, ids.usdc_issuer, amount))
    else:
        ledger.put_raw_entry(*sac_balance_entry(ids.usdc_contract_id, wallet, amount))


def set_db_balance(engine: sa.Engine, k: int, amount: int) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET usdc_balance = :amount, updated_at = now() WHERE id = :id"),
                           {"amount": amount, "id": user_id(k)})


def readable_holders(world: BalancesWorld) -> int:
    return len(world.trustlines) + len(world.sac_balances)


def test_incremental_run_decodes_only_what_changed_and_finds_what_a_full_sweep_finds(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    resources = frequent_resources(database_url, devnet.url)
    first = run(resources)
    assert asset_metadata(first, "chain_usdc_balances")["sweep_mode"] == FULL_SWEEP
    assert unresolved_incidents(engine, "balances") == incident_keys(world.expected_findings(with_burst=False))

    ledger.close_ledger()
    balances = world.db.set_index("user_id")["usdc_balance"]
    set_chain_balance(ledger, world, 22, int(balances[user_id(22)]) + 5_000_000)  # trustline moves: new drift
    set_chain_balance(ledger, world, 26, int(balances[user_id(26)]) + 1)  # within tolerance: no finding
    set_chain_balance(ledger, world, 8, int(balances[user_id(8)]))  # chain catches up: drift fixed
    set_db_balance(engine, 21, int(balances[user_id(21)]) - 7_000_000)  # app writes: new drift
    set_db_balance(engine, 2, 999_000_000)  # app corrects itself: drift fixed
    ledger.reset_counters()
    second = run(resources)

    chain = asset_metadata(second, "chain_usdc_balances")
    assert chain["sweep_mode"] == "incremental"
    compared = {22, 26, 8, 21, 2} | FINDING_USERS
    # every holding is still read (nothing says what changed), but only these are decoded and diffed;
    # users 4 and 11 have no entry, so they are compared without being decoded
    assert ledger.request_counts["getLedgerEntries"] == 2
    assert chain["holders_unchanged_skipped"] == readable_holders(world) - len(compared - {4, 11})
    diff = asset_metadata(second, "usdc_balance_discrepancies")
    assert diff["entities_skipped_unchanged"] == chain["holders_unchanged_skipped"]
    assert diff["entities_checked"] == len(compared | {5})  # user 5's invalid wallet is always checked

    found = persisted_findings(engine, second.run_id)
    assert set(found["entity_id"]) == {f"user_{user_id(k)}" for k in {22, 21, 4, 5, 6, 9, 11}}
    incremental_view = unresolved_incidents(engine, "balances")

    full = run(resources, **{SWEEP_TAG: FULL_SWEEP})
    assert asset_metadata(full, "chain_usdc_balances")["sweep_mode"] == FULL_SWEEP
    assert asset_metadata(full, "chain_usdc_balances")["holders_unchanged_skipped"] == 0
    assert incident_keys(persisted_findings(engine, full.run_id)) == incremental_view
    assert unresolved_incidents(engine, "balances") == incremental_view


def test_holdings_a_run_could_not_read_are_compared_by_the_next_one(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    resources = frequent_resources(database_url, devnet.url)
    run(resources)
    ledger.faults = world.rpc_burst  # the last request fails on every attempt
    burst = run(resources)
    findings = persisted_findings(engine, burst.run_id)
    burst_users = list(findings.loc[findings["drift_class"] == "CHAIN_READ_ERROR", "entity_id"])
    assert len(burst_users) == 68

    # their recorded versions are gone: the database row is unchanged and so is the
    # entry, yet the next run compares them, which resolves their read errors
    ledger.faults = FaultConfig()
    after = run(resources)
    compared = asset_metadata(after, "chain_usdc_balances")["holders_compared"]
    assert compared == len(burst_users) + len(FINDING_USERS - {4})  # user 4 has no trustline: missing
    assert not {incident[1] for incident in unresolved_incidents(engine, "balances")} & set(burst_users)


def test_a_chain_behind_the_record_is_swept_in_full(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    """After a network reset the same ledger numbers name other entries: what was recorded
    no longer applies, so the run compares everything."""
    resources = frequent_resources(database_url, devnet.url)
    run(resources)
    with engine.begin() as connection:  # recorded on a history longer than the chain now has
        connection.execute(sa.text("UPDATE recon.sweep_watermarks SET ledger_sequence = :ahead "
                                   "WHERE domain = 'balances'"), {"ahead": ledger.latest_ledger + 1_000})
    after = asset_metadata(run(resources), "chain_usdc_balances")
    assert after["sweep_mode"] == FULL_SWEEP
    assert "behind the recorded ledger" in after["sweep_reason"]
    assert after["holders_unchanged_skipped"] == 0


def test_an_unknown_sweep_tag_fails_the_run_with_a_clear_error(
    world: BalancesWorld, database_url: str, devnet: DevnetServer
) -> None:
    with pytest.raises(ValueError, match=r"recon/sweep='everything': expected 'full' or 'incremental'"):
        run(frequent_resources(database_url, devnet.url), **{SWEEP_TAG: "everything"})
