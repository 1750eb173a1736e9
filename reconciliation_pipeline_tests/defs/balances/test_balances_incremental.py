"""Incremental balances runs: real PostgreSQL, the devnet over HTTP, in-process Dagster
runs. The every-5-minutes run reads the holders the USDC SAC's movement events name
(CAP-67), users whose row changed and users with open incidents; it finds the same
drift as a full sweep of the same state, except a balance that changed without an
event, which the nightly full sweep catches."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from recon_demo.worlds.balances import (
    BalancesWorld,
    build_balances_world,
    load_balances_into_ledger,
    mint_usdc,
    transfer_usdc,
    trustline_entry,
    user_id,
    write_balances_to_db,
)
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, INCREMENTAL_SWEEP, SWEEP_TAG
from reconciliation_pipeline_tests.defs.markets.support import (
    BALANCES_ASSETS,
    asset_metadata,
    frequent_resources,
    incident_keys,
    persisted_findings,
    unresolved_incidents,
)
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

N_USERS = 300
FINDING_USERS = {2, 4, 6, 8, 9, 11}
"""Holders the world's catalogue gives a finding (user 5's invalid wallet is never read)."""


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


def wallet(world: BalancesWorld, k: int) -> str:
    return world.db.set_index("user_id").at[user_id(k), "wallet_address"]


def chain_balance(world: BalancesWorld, k: int) -> int:
    return int(world.db.set_index("user_id").at[user_id(k), "usdc_balance"])


def mint(ledger: DevnetLedger, world: BalancesWorld, k: int, balance_before: int, amount: int) -> None:
    mint_usdc(ledger, world.identities, wallet(world, k), balance_before + amount, amount)


def set_db_balance(engine: sa.Engine, k: int, amount: int) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET usdc_balance = :amount, updated_at = now() WHERE id = :id"),
                           {"amount": amount, "id": user_id(k)})


def users(*ks: int) -> set[str]:
    return {f"user_{user_id(k)}" for k in ks}


def test_incremental_run_reads_what_moved_and_finds_what_a_full_sweep_finds(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    resources = frequent_resources(database_url, devnet.url)
    first = run(resources)
    assert asset_metadata(first, "usdc_movements")["sweep_mode"] == FULL_SWEEP
    assert unresolved_incidents(engine, "balances") == incident_keys(world.expected_findings(with_burst=False))

    ledger.close_ledger()
    mint(ledger, world, 22, chain_balance(world, 22), 5_000_000)  # credited on chain only: new drift
    transfer_usdc(ledger, world.identities, (wallet(world, 26), chain_balance(world, 26) - 1),  # within tolerance:
                  (wallet(world, 27), chain_balance(world, 27) + 1), 1)  # both read, no finding
    mint(ledger, world, 8, 80_000_000, 11)  # the chain catches up with the app: drift fixed
    set_db_balance(engine, 21, chain_balance(world, 21) - 7_000_000)  # the app writes: new drift
    set_db_balance(engine, 2, 999_000_000)  # the app corrects itself: drift fixed
    ids = world.identities  # a balance that changes with no event (not possible since CAP-67)
    ledger.put_raw_entry(*trustline_entry(wallet(world, 33), ids.usdc_asset_code, ids.usdc_issuer,
                                          chain_balance(world, 33) + 9_000_000))
    ledger.close_ledger()
    ledger.reset_counters()
    second = run(resources)

    movements = asset_metadata(second, "usdc_movements")
    assert (movements["sweep_mode"], movements["change_events"], movements["values_named_by_events"]) == (INCREMENTAL_SWEEP, 3, 4)
    compared = {22, 26, 27, 8} | {21, 2} | FINDING_USERS | {5}  # moved, row written, open incidents
    assert asset_metadata(second, "db_usdc_balances")["dagster/row_count"] == len(compared)
    assert ledger.request_counts["getLedgerEntries"] == 1
    # every compared wallet but user 5's invalid one is read; user 4 has no trustline
    assert asset_metadata(second, "chain_usdc_balances")["entries_ok"] == len(compared - {4, 5})
    assert asset_metadata(second, "usdc_balance_discrepancies")["entities_checked"] == len(compared)

    assert set(persisted_findings(engine, second.run_id)["entity_id"]) == users(22, 21, 4, 5, 6, 9, 11)
    incremental_view = unresolved_incidents(engine, "balances")

    full = run(resources, **{SWEEP_TAG: FULL_SWEEP})
    assert asset_metadata(full, "usdc_movements")["sweep_mode"] == FULL_SWEEP
    found_in_full = incident_keys(persisted_findings(engine, full.run_id))
    silent = {key for key in found_in_full if key[1] in users(33)}
    assert len(silent) == 1  # only the nightly sweep sees a change no event announced
    assert found_in_full - silent == incremental_view


def test_holders_a_run_could_not_read_are_read_by_the_next_one(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    resources = frequent_resources(database_url, devnet.url)
    run(resources)
    ledger.faults = world.rpc_burst  # the last request fails on every attempt
    burst = run(resources, **{SWEEP_TAG: FULL_SWEEP})
    findings = persisted_findings(engine, burst.run_id)
    burst_users = set(findings.loc[findings["drift_class"] == "CHAIN_READ_ERROR", "entity_id"])
    assert len(burst_users) == 68

    ledger.faults = FaultConfig()
    after = run(resources)
    # their read errors are open incidents, so the incremental run reads them again
    assert asset_metadata(after, "usdc_balance_discrepancies")["entities_checked"] == (
        len(burst_users) + len(FINDING_USERS | {5}))
    assert not {incident[1] for incident in unresolved_incidents(engine, "balances")} & burst_users


def test_events_out_of_retention_mean_every_holding_is_read(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    """Without the events since the last run the run cannot know who moved: it sweeps."""
    resources = frequent_resources(database_url, devnet.url)
    run(resources)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE recon.sweep_watermarks SET ledger_sequence = :before "
                                   "WHERE domain = 'balances'"), {"before": ledger.oldest_ledger - 10})
    ledger.close_ledger()
    mint(ledger, world, 22, chain_balance(world, 22), 5_000_000)
    ledger.reset_counters()
    after = run(resources)
    movements = asset_metadata(after, "usdc_movements")
    assert movements["sweep_mode"] == FULL_SWEEP
    assert "retention" in movements["sweep_reason"]
    assert ledger.request_counts["getLedgerEntries"] == 2
    assert user_id(22) in {int(k) for k in after.output_for_node("usdc_balance_discrepancies").findings["entity_key"]}


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
    after = asset_metadata(run(resources), "usdc_movements")
    assert after["sweep_mode"] == FULL_SWEEP
    assert "behind the recorded ledger" in after["sweep_reason"]


def test_an_unknown_sweep_tag_fails_the_run_with_a_clear_error(
    world: BalancesWorld, database_url: str, devnet: DevnetServer
) -> None:
    with pytest.raises(ValueError, match=r"recon/sweep='everything': expected 'full' or 'incremental'"):
        run(frequent_resources(database_url, devnet.url), **{SWEEP_TAG: "everything"})


def test_movements_older_than_the_event_window_are_replayed_from_ledger_metadata(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    """getEvents keeps 1,000 ledgers, getLedgers more: the movements since the watermark that left the
    event window are read from the ledgers' metadata, and the run stays incremental."""
    resources = frequent_resources(database_url, devnet.url)
    run(resources)
    ledger.retention_window = 1_000
    ledger.close_ledger()
    mint(ledger, world, 22, chain_balance(world, 22), 5_000_000)
    ledger.close_ledger(1_500)  # the mint's ledger is older than getEvents's window now
    ledger.reset_counters()
    after = run(resources)
    movements = asset_metadata(after, "usdc_movements")
    assert movements["sweep_mode"] == "incremental"
    assert movements["event_source"] == "getLedgers+getEvents" and movements["values_named_by_events"] == 1
    assert ledger.request_counts["getLedgerEntries"] == 1
    found = after.output_for_node("usdc_balance_discrepancies").findings
    assert user_id(22) in {int(k) for k in found["entity_key"]}
    with engine.connect() as connection:
        replays = connection.execute(sa.text("SELECT purpose, source FROM recon.ledger_replays")).all()
    assert [tuple(r) for r in replays] == [("usdc_movements", "getLedgers+getEvents")]
