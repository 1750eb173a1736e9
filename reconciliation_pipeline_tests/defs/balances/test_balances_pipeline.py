"""The USDC balances reconciliation end to end: real PostgreSQL, the devnet over
HTTP (real TrustLine and SAC entries), in-process Dagster runs of the real assets."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.identities import account_id, contract_id
from recon_demo.worlds.balances import (
    BalancesWorld,
    build_balances_world,
    load_balances_into_ledger,
    mirror_other_holders_into_ledger,
    user_id,
    write_balances_to_db,
)
from reconciliation_pipeline_tests.defs.markets.support import (
    BALANCES_ASSETS,
    as_set,
    frequent_resources,
    persisted_findings,
    run_frequent,
)
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

N_USERS = 300


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger) -> BalancesWorld:
    world = build_balances_world(N_USERS)
    write_balances_to_db(engine, world)
    load_balances_into_ledger(ledger, world)
    return world


def _run_status(engine: sa.Engine, run_id: str) -> tuple[str, int, int]:
    with engine.connect() as connection:
        return tuple(connection.execute(
            sa.text("SELECT status, entities_checked, entities_unchecked FROM recon.runs "
                    "WHERE run_id = :r AND domain = 'balances'"), {"r": run_id}).one())


def test_catalogue_with_the_rpc_burst_is_reported_exactly(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    ledger.faults = world.rpc_burst
    ledger.reset_counters()
    result = run_frequent(frequent_resources(database_url, devnet.url), BALANCES_ASSETS)
    found = persisted_findings(engine, result.run_id)
    expected = world.expected_findings()
    assert as_set(found) == as_set(expected)
    assert len(found) == len(expected)
    # 268 holders: a good request of 200, then the burst's request failing all 3 attempts
    assert ledger.request_counts["getLedgerEntries"] == 1 + 3
    burst = found[found["drift_class"] == "CHAIN_READ_ERROR"]
    assert len(burst) == 68
    assert all("injected failure" in d["error"] and "after 3 attempts" in d["error"] for d in burst["details"])
    status, checked, unchecked = _run_status(engine, result.run_id)
    assert (status, unchecked) == ("partial", 68)
    assert checked == 268 - 68 + 1  # plus the invalid wallet, checked without a read
    missing = found[found["field"] == "trustline"].iloc[0]
    assert missing["details"]["holder_kind"] == "account"
    assert missing["details"]["balance_entry"] == "absent"
    no_entry = found[found["entity_id"] == f"user_{user_id(11)}"].iloc[0]
    assert (no_entry["details"]["holder_kind"], no_entry["details"]["balance_entry"]) == ("contract", "absent")
    assert int(found[found["entity_id"] == f"user_{user_id(2)}"].iloc[0]["delta"]) == -1_000_000
    metadata = result.asset_materializations_for_node("db_usdc_balances")[0].metadata
    assert metadata["users_without_wallet"].value == world.users_without_wallet == 31


def test_without_faults_every_holder_is_reconciled(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    ledger.reset_counters()
    result = run_frequent(frequent_resources(database_url, devnet.url), BALANCES_ASSETS)
    found = persisted_findings(engine, result.run_id)
    assert as_set(found) == as_set(world.expected_findings(with_burst=False))
    assert ledger.request_counts["getLedgerEntries"] == 2
    assert _run_status(engine, result.run_id) == ("succeeded", 269, 0)


def test_a_wider_tolerance_absorbs_small_differences(
    world: BalancesWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    result = run_frequent(frequent_resources(database_url, devnet.url, tolerance=1_000_000), BALANCES_ASSETS)
    mismatched = persisted_findings(engine, result.run_id).query("drift_class == 'VALUE_MISMATCH'")
    assert set(mismatched["entity_id"]) == {f"user_{user_id(k)}" for k in (6, 11)}


def test_users_without_a_wallet_cause_no_chain_request(
    engine: sa.Engine, ledger: DevnetLedger, database_url: str, devnet: DevnetServer
) -> None:
    world = build_balances_world(N_USERS)
    world.db["wallet_address"] = pd.Series([None if k % 2 else "" for k in range(len(world.db))], dtype=object)
    write_balances_to_db(engine, world)
    ledger.reset_counters()
    result = run_frequent(frequent_resources(database_url, devnet.url), BALANCES_ASSETS)
    # only the ledger the run starts from (its watermark), which every run asks for
    assert dict(ledger.request_counts) == {"getLatestLedger": 1}
    assert persisted_findings(engine, result.run_id).empty
    metadata = result.asset_materializations_for_node("db_usdc_balances")[0].metadata
    assert metadata["users_without_wallet"].value == N_USERS


def test_users_other_domains_seeded_get_matching_holdings_for_the_demo(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    others = [(1, account_id("streak-player:1"), 5_000), (2, contract_id("streak-player:2"), 0), (3, None, 7)]
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO users (id, username, wallet_address, usdc_balance) VALUES (:id, 'p', :w, :b)"),
            [{"id": i, "w": w, "b": b} for i, w, b in others],
        )
    assert mirror_other_holders_into_ledger(engine, ledger, world) == 2
    result = run_frequent(frequent_resources(database_url, devnet.url), BALANCES_ASSETS)
    found = persisted_findings(engine, result.run_id)
    assert as_set(found) == as_set(world.expected_findings(with_burst=False))
    chain = result.output_for_node("chain_usdc_balances").frame.set_index("user_id")
    assert chain.loc[[1, 2], "usdc_balance"].tolist() == [5_000, 0]


def test_users_sharing_a_wallet_are_each_compared_with_its_one_holding(
    world: BalancesWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer
) -> None:
    """Two users with one wallet: its ledger key is read once and both rows get its entry
    (neither is reported missing on chain)."""
    wallet = world.db.loc[world.db["user_id"] == user_id(31), "wallet_address"].iloc[0]
    balance = int(world.db.loc[world.db["user_id"] == user_id(31), "usdc_balance"].iloc[0])
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO users (id, username, wallet_address, usdc_balance) VALUES (:id, 'twin', :w, :b)"),
            {"id": 7, "w": wallet, "b": balance + 500},
        )
    result = run_frequent(frequent_resources(database_url, devnet.url), BALANCES_ASSETS)
    found = persisted_findings(engine, result.run_id)
    twin = found[found["entity_id"] == "user_7"]
    assert twin[["field", "drift_class", "delta"]].values.tolist() == [["usdc_balance", "VALUE_MISMATCH", -500]]
    assert found[found["entity_id"] == f"user_{user_id(31)}"].empty
    chain = result.output_for_node("chain_usdc_balances").frame.set_index("user_id")
    assert chain.loc[[7, user_id(31)], "usdc_balance"].tolist() == [balance, balance]


def test_a_muxed_wallet_is_read_as_its_base_account_and_says_so(
    world: BalancesWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    """Two users with M... wallets (SEP-23) on a clean holder's G... account: both are read from
    its trustline, neither is INVALID_ADDRESS; the one whose balance differs says which account
    was read."""
    from stellar_sdk import MuxedAccount

    drifting = set(world.expected_findings()["entity_id"])
    clean = world.db[world.db["wallet_address"].str.startswith("G", na=False)
                     & ~("user_" + world.db["user_id"].astype(str)).isin(drifting)].iloc[0]
    base, balance = clean["wallet_address"], int(clean["usdc_balance"])
    muxed = [MuxedAccount(base, muxed_id).account_muxed for muxed_id in (7, 8)]
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO users (id, username, wallet_address, usdc_balance) VALUES (:id, 'sub', :w, :b)"),
            [{"id": 7, "w": muxed[0], "b": balance}, {"id": 8, "w": muxed[1], "b": balance + 900}],
        )
    result = run_frequent(frequent_resources(database_url, devnet.url), BALANCES_ASSETS)
    found = persisted_findings(engine, result.run_id)
    assert found[found["entity_id"] == "user_7"].empty
    chain = result.output_for_node("chain_usdc_balances").frame.set_index("user_id")
    on_chain = int(chain.loc[int(clean["user_id"]), "usdc_balance"])
    assert chain.loc[[7, 8], "usdc_balance"].tolist() == [on_chain, on_chain]
    off = found[found["entity_id"] == "user_8"]
    assert off[["field", "drift_class"]].values.tolist() == [["usdc_balance", "VALUE_MISMATCH"]]
    assert int(off.iloc[0]["delta"]) == on_chain - (balance + 900)
    details = off.iloc[0]["details"]
    assert details["wallet_address"] == muxed[1] and details["read_as_account"] == base
    assert "muxed" in details["note"]
    assert not found["db_value"].isin(muxed).any()
