"""The streaks reconciliation end to end: real PostgreSQL, the devnet over HTTP,
in-process Dagster runs of the real assets, the sync behind its flag."""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from stellar_sdk import SorobanServer, StrKey, TransactionBuilder, scval

from recon_demo.identities import keypair
from recon_demo.worlds.streaks import (
    StreaksWorld,
    load_streaks_into_ledger,
    oracle_keypair_for_devnet,
    write_streaks_to_db,
)
from reconciliation_pipeline.core import repairs
from reconciliation_pipeline.core.drift_store import RunInfo
from reconciliation_pipeline.defs.streaks.definitions import STREAKS
from reconciliation_pipeline.defs.streaks.oracle import parse_flag
from reconciliation_pipeline_tests.defs.streaks.conftest import streak_resources
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer
from soroban_devnet.streaks_contract import StreakContract
from soroban_devnet.transactions import TransactionStore

FINDING_KEY = ["entity_type", "entity_id", "field", "drift_class", "severity", "db_value", "chain_value"]


def run_streaks(database_url: str, devnet: DevnetServer, partition: str, *, enabled: bool = False,
                secret: str | None = None, apply: bool = False, dry_run: bool = False,
                user_ids: list[int] | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        STREAKS.assets("nightly"),
        resources=streak_resources(database_url, devnet.url, enabled=enabled, secret=secret),
        partition_key=partition,
        run_config={"ops": {"user_streak_repairs": {"config": {"apply": apply, "dry_run": dry_run}},
                            "db_user_streaks": {"config": {"only_keys": [str(u) for u in user_ids or []]}}}},
    )


def query(engine: sa.Engine, text: str, **params: object) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text(text), connection, params=params)


def as_set(frame: pd.DataFrame) -> set[tuple]:
    rows = frame[FINDING_KEY].astype(object).where(frame[FINDING_KEY].notna(), None)
    return set(map(tuple, rows.itertuples(index=False)))


def chain_streaks(contract: StreakContract, world: StreaksWorld) -> dict[str, int]:
    wallets = {p.wallet for p in world.participants
               if p.wallet and StrKey.is_valid_ed25519_public_key(p.wallet) and p.wallet not in world.undecodable}
    return {w: profile["current_streak"] for w in wallets if (profile := contract.profile(w)) is not None}


def test_first_run_reports_exactly_the_catalogue_and_plans_syncs_without_sending(
    world: StreaksWorld, contract: StreakContract, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, yesterday: str,
) -> None:
    before = chain_streaks(contract, world)
    result = run_streaks(database_url, devnet, yesterday, secret="")  # no key is needed to plan

    found = query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=result.run_id)
    assert as_set(found) == as_set(world.expected_findings())
    assert len(found) == len(world.expected_findings())
    late = world.by_name("late_session")
    mismatch = found[(found["entity_id"] == late.wallet) & (found["drift_class"] == "VALUE_MISMATCH")].iloc[0]
    assert int(mismatch["delta"]) == -3 and mismatch["details"]["user_id"] == late.user_id
    assert mismatch["ledger_sequence"] is not None and mismatch["partition_key"] == yesterday

    computed = result.output_for_node("computed_user_streaks").streaks.set_index("user_id")
    truth = world.truth().set_index("user_id")
    assert computed.loc[truth.index, list(truth.columns)].astype(object).equals(truth.astype(object))

    assert ledger.request_counts["sendTransaction"] == 0
    assert ledger.request_counts["simulateTransaction"] == 0
    assert chain_streaks(contract, world) == before
    syncs = query(engine, "SELECT * FROM recon.streak_syncs")
    assert set(syncs["status"]) == {"planned"}
    assert dict(zip(syncs["player_address"], syncs["streak_value"], strict=True)) == world.expected_syncs()
    assert syncs["tx_hash"].isna().all()

    metadata = result.asset_materializations_for_node("computed_user_streaks")[0].metadata
    assert metadata["users_without_wallet"].value == 2
    compared = len(result.output_for_node("chain_player_profiles").frame)
    assert compared > 200  # two batches of profiles, then one batched re-read of the candidates
    assert ledger.request_counts["getLedgerEntries"] == -(-compared // 200) + 1


def test_with_the_flag_on_exactly_the_mismatched_players_are_synced_and_a_second_run_sends_nothing(
    world: StreaksWorld, contract: StreakContract, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, yesterday: str,
) -> None:
    before = chain_streaks(contract, world)
    first = run_streaks(database_url, devnet, yesterday, enabled=True)
    after = chain_streaks(contract, world)
    changed = {w: v for w, v in after.items() if before[w] != v}
    assert changed == world.expected_syncs()
    assert ledger.request_counts["sendTransaction"] == len(changed)

    syncs = query(engine, "SELECT * FROM recon.streak_syncs WHERE run_id = :r", r=first.run_id)
    assert set(syncs["status"]) == {"success"} and len(syncs) == len(changed)
    assert syncs["tx_hash"].str.fullmatch(r"[0-9a-f]{64}").all() and syncs["finished_at"].notna().all()
    assert dict(zip(syncs["player_address"], syncs["chain_value"], strict=True)) == {w: before[w] for w in changed}

    sends = ledger.request_counts["sendTransaction"]
    second = run_streaks(database_url, devnet, yesterday, enabled=True)
    assert ledger.request_counts["sendTransaction"] == sends
    assert query(engine, "SELECT * FROM recon.streak_syncs WHERE run_id = :r", r=second.run_id).empty
    found = query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=second.run_id)
    assert not (found["drift_class"] == "VALUE_MISMATCH").any()
    incidents = query(engine, "SELECT entity_id, state FROM recon.drift_incidents WHERE drift_class = 'VALUE_MISMATCH'")
    assert set(incidents["state"]) == {"resolved"} and set(incidents["entity_id"]) == set(changed)


def test_a_wrong_oracle_key_records_clear_failures_and_nothing_else_breaks(
    world: StreaksWorld, contract: StreakContract, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, yesterday: str,
) -> None:
    impostor = keypair("streak-test:impostor")
    contract.fund_account(impostor.public_key)
    before = chain_streaks(contract, world)
    result = run_streaks(database_url, devnet, yesterday, enabled=True, secret=impostor.secret)
    assert result.success
    syncs = query(engine, "SELECT * FROM recon.streak_syncs WHERE run_id = :r", r=result.run_id)
    assert set(syncs["player_address"]) == set(world.expected_syncs())
    assert set(syncs["status"]) == {"failed"}
    assert syncs["error"].str.contains(f"signs as {impostor.public_key}, but the streak contract's oracle is "
                                       f"{world.oracle}").all()
    assert ledger.request_counts["sendTransaction"] == 0
    assert chain_streaks(contract, world) == before
    found = query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=result.run_id)
    assert as_set(found) == as_set(world.expected_findings())


def test_an_invalid_secret_fails_at_start_without_repeating_it(
    world: StreaksWorld, contract: StreakContract, database_url: str, devnet: DevnetServer, yesterday: str,
) -> None:
    secret = "SNOTAREALSECRETSEED"
    with pytest.raises(Exception, match="ORACLE_SECRET_KEY is not a valid Stellar secret seed") as raised:
        run_streaks(database_url, devnet, yesterday, enabled=True, secret=secret)
    assert secret not in str(raised.value)


def test_the_secret_never_reaches_logs_or_metadata(
    world: StreaksWorld, contract: StreakContract, database_url: str, devnet: DevnetServer, yesterday: str,
) -> None:
    result = run_streaks(database_url, devnet, yesterday, enabled=True)
    secret = oracle_keypair_for_devnet().secret
    recorded = " ".join(str(event) for event in result.all_events)
    assert secret not in recorded
    assert oracle_keypair_for_devnet().public_key in recorded


def test_sync_survives_try_again_later_and_a_moved_sequence_number(
    world: StreaksWorld, database_url: str, engine: sa.Engine, yesterday: str,
) -> None:
    # Another transaction of the oracle's is queued when the sync starts, and ledgers close only
    # once the sync has sent something: its first send meets TRY_AGAIN_LATER, and once the queued
    # one lands, its sequence number is stale (txBAD_SEQ) and it is rebuilt.
    ledger = DevnetLedger(ledger_close_seconds=math.inf)
    contract = load_streaks_into_ledger(ledger, TransactionStore(ledger), world)
    write_streaks_to_db(engine, world)
    stop = threading.Event()

    def close_ledgers_once_the_sync_sends() -> None:
        # One ledger per pending transaction: each manual close moves the devnet's clock 5 s.
        while not stop.is_set():
            if ledger.request_counts["sendTransaction"] >= 2 and contract.pending_count:
                ledger.close_ledger()
                contract.settle()
            time.sleep(0.03)

    closer = threading.Thread(target=close_ledgers_once_the_sync_sends, daemon=True)
    with DevnetServer(ledger) as devnet, SorobanServer(devnet.url) as server:
        clean = world.by_name("player_0")
        queued = server.prepare_transaction(
            TransactionBuilder(server.load_account(world.oracle), world.identities.network_passphrase, 100)
            .append_invoke_contract_function_op(world.identities.streak_contract_id, "sync_streak",
                                                [scval.to_address(clean.wallet), scval.to_uint32(1)])
            .set_timeout(30).build()
        )
        queued.sign(oracle_keypair_for_devnet())
        assert server.send_transaction(queued).status.name == "PENDING"
        closer.start()
        try:
            result = run_streaks(database_url, devnet, yesterday, enabled=True)
        finally:
            stop.set()
            closer.join()

    syncs = query(engine, "SELECT * FROM recon.streak_syncs WHERE run_id = :r ORDER BY sync_id", r=result.run_id)
    first = syncs[syncs["player_address"] == syncs["player_address"].iloc[0]]
    assert list(first["status"]) == ["failed", "success"]
    assert "txBAD_SEQ" in first["error"].iloc[0] and first["tx_hash"].nunique() == 2
    assert ledger.request_counts["sendTransaction"] >= 1 + 2 + len(world.expected_syncs())  # queued, TRY_AGAIN_LATER, BAD_SEQ
    assert set(syncs.groupby("player_address")["status"].last()) == {"success"}
    synced = {w: contract.profile(w)["current_streak"] for w in world.expected_syncs()}
    assert synced == world.expected_syncs()


def test_projection_repairs_apply_with_audit_and_leave_nothing_to_repair(
    world: StreaksWorld, contract: StreakContract, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    run_streaks(database_url, devnet, yesterday, apply=True)
    repaired = query(engine, "SELECT entity_id, field, state FROM recon.repairs ORDER BY entity_id, field")
    expected = world.expected_findings().query("drift_class == 'PROJECTION_DRIFT'")
    assert sorted(zip(repaired["entity_id"], repaired["field"], strict=True)) == sorted(
        zip(expected["entity_id"], expected["field"], strict=True))
    assert set(repaired["state"]) == {"applied"}
    audit = query(engine, "SELECT action FROM recon.repair_audit")
    assert list(audit["action"]) == ["applied"] * len(repaired)

    stored = query(engine, "SELECT user_id, current_streak, longest_streak, last_qualified_date, qualified_days "
                           "FROM user_streaks").set_index("user_id")
    truth = world.truth().set_index("user_id")
    assert stored.loc[truth.index].astype(object).equals(truth.astype(object))

    second = run_streaks(database_url, devnet, yesterday, apply=True)
    found = query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=second.run_id)
    assert not (found["drift_class"] == "PROJECTION_DRIFT").any()
    assert len(query(engine, "SELECT * FROM recon.repair_audit")) == len(repaired)


def test_dry_run_plans_but_leaves_the_projection_untouched(
    world: StreaksWorld, contract: StreakContract, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    before = query(engine, "SELECT * FROM user_streaks ORDER BY user_id")
    result = run_streaks(database_url, devnet, yesterday, apply=True, dry_run=True)
    assert query(engine, "SELECT * FROM user_streaks ORDER BY user_id").equals(before)
    states = query(engine, "SELECT DISTINCT state FROM recon.repairs")
    assert list(states["state"]) == ["planned"]
    dry = query(engine, "SELECT dry_run FROM recon.runs WHERE run_id = :r", r=result.run_id)
    assert dry["dry_run"].tolist() == [True]


def test_a_concurrent_app_write_wins_over_a_planned_repair(
    world: StreaksWorld, contract: StreakContract, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    result = run_streaks(database_url, devnet, yesterday)
    plan = result.output_for_node("streak_discrepancies").repair_plan
    late = world.by_name("late_session")
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE user_streaks SET current_streak = 11 WHERE user_id = :u"), {"u": late.user_id})
    outcome = repairs.apply_plan(engine, RunInfo("apply-run", "test", None), plan)
    assert outcome.skipped == 1 and outcome.applied == len(plan) - 1 and outcome.failed == 0
    stored = query(engine, "SELECT current_streak, longest_streak FROM user_streaks WHERE user_id = :u", u=late.user_id)
    assert stored.iloc[0].tolist() == [11, 10]
    missing = world.by_name("missing_projection")
    inserted = query(engine, "SELECT current_streak, qualified_days FROM user_streaks WHERE user_id = :u",
                     u=missing.user_id)
    assert inserted.iloc[0].tolist() == [1, 1]


def test_a_backfilled_day_reproduces_that_day_and_compares_nothing(
    world: StreaksWorld, contract: StreakContract, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, reference_time: datetime,
) -> None:
    past = (reference_time - timedelta(days=5)).strftime("%Y-%m-%d")
    ledger.reset_counters()
    first = run_streaks(database_url, devnet, past, enabled=True)
    with engine.begin() as connection:  # a session arriving after that day cannot change it
        connection.execute(sa.text("INSERT INTO focus_sessions (id, user_id, started_at, ended_at) "
                                   "VALUES ('later', :u, now() - interval '2 hours', now() - interval '1 hour')"),
                           {"u": world.by_name("stale_broken").user_id})
    second = run_streaks(database_url, devnet, past, enabled=True)
    computed = first.output_for_node("computed_user_streaks").streaks
    assert computed.equals(second.output_for_node("computed_user_streaks").streaks)
    day = pd.Timestamp(past).date()
    late = world.by_name("late_session")
    row = computed.set_index("user_id").loc[late.user_id]
    assert row["today"] == day
    assert row["qualified_days"] == sum(1 for start, _, _ in late.sessions
                                        if start.astimezone(ZoneInfo(late.timezone)).date() <= day)
    assert query(engine, "SELECT * FROM recon.discrepancies").empty
    assert query(engine, "SELECT * FROM recon.streak_syncs").empty
    assert ledger.request_counts["getLedgerEntries"] == 0 and ledger.request_counts["sendTransaction"] == 0
    # Each backfill run is recorded, saying it recomputed only (and why), once its last step ended.
    runs = query(engine, "SELECT run_id, domain, partition_key, status, outcome, status_note, steps_pending, "
                         "finished_at FROM recon.runs ORDER BY started_at")
    assert runs["run_id"].tolist() == [first.run_id, second.run_id]
    assert (runs["partition_key"] == past).all() and (runs["domain"] == "streaks").all()
    assert (runs["status"] == "recomputed").all() and (runs["outcome"] == "recomputed").all()
    assert runs["status_note"].str.startswith(f"backfill as of {past}").all()
    assert runs["status_note"].str.contains("recomputed only").all()
    assert (runs["steps_pending"] == 0).all() and runs["finished_at"].notna().all()


def test_a_scoped_run_covers_its_users_and_keeps_the_partitions_findings(
    world: StreaksWorld, contract: StreakContract, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    full = run_streaks(database_url, devnet, yesterday)
    late = world.by_name("late_session")
    scoped = run_streaks(database_url, devnet, yesterday, user_ids=[late.user_id])
    mine = query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=scoped.run_id)
    expected = world.expected_findings()
    assert as_set(mine) == as_set(expected[expected["entity_id"].isin([f"user_{late.user_id}", late.wallet])])
    assert mine["partition_key"].isna().all()
    kept = query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=full.run_id)
    assert as_set(kept) == as_set(expected)
    assert len(scoped.output_for_node("db_user_streaks").frame) == 1


def test_runs_scoped_to_users_without_a_wallet_or_to_nobody_read_nothing_from_chain(
    world: StreaksWorld, contract: StreakContract, ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, yesterday: str,
) -> None:
    stale = world.by_name("no_wallet_stale")
    ledger.reset_counters()
    result = run_streaks(database_url, devnet, yesterday, enabled=True, user_ids=[stale.user_id])
    found = query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=result.run_id)
    expected = world.expected_findings()
    assert as_set(found) == as_set(expected[expected["entity_id"] == f"user_{stale.user_id}"])
    assert ledger.request_counts["getLedgerEntries"] == 0 and ledger.request_counts["sendTransaction"] == 0

    nobody = run_streaks(database_url, devnet, yesterday, enabled=True, user_ids=[1])
    assert nobody.output_for_node("db_user_streaks").frame.empty
    assert query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=nobody.run_id).empty


def test_only_the_sync_asset_can_get_the_signing_resource() -> None:
    holders = {a.key.to_user_string() for a in STREAKS.assets("nightly") if "streak_oracle" in a.required_resource_keys}
    assert holders == {"streak_syncs"}


@pytest.mark.parametrize(("value", "enabled"), [("true", True), (" TRUE ", True), ("1", True), ("false", False), ("", False)])
def test_the_sync_flag_reads_true_or_false(value: str, enabled: bool) -> None:
    assert parse_flag(value, "STREAK_SYNC_ENABLED") is enabled


def test_an_unrecognised_sync_flag_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(dg.DagsterInvariantViolationError, match="STREAK_SYNC_ENABLED must be true or false"):
        parse_flag("maybe", "STREAK_SYNC_ENABLED")


def test_implausible_sessions_are_findings_and_keep_their_users_out_of_the_sync(
    world: StreaksWorld, contract: StreakContract, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str, reference_time: datetime,
) -> None:
    """An app schema without the reference schema's CHECK / NOT NULL: a 10,000-day session, one
    that ends before it starts, one that never ended; a session in progress is none of those."""
    long_session, backwards, never_ended, in_progress = (world.by_name(f"player_{i}") for i in range(4))
    now = reference_time
    sessions = [
        ("implausible-long", long_session.user_id, now - timedelta(days=10_000), now - timedelta(minutes=1)),
        ("implausible-backwards", backwards.user_id, now - timedelta(hours=1), now - timedelta(hours=3)),
        ("implausible-open", never_ended.user_id, now - timedelta(days=3), None),
        ("in-progress", in_progress.user_id, now - timedelta(minutes=20), None),
    ]
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE focus_sessions ALTER COLUMN ended_at DROP NOT NULL"))
        connection.execute(sa.text("ALTER TABLE focus_sessions DROP CONSTRAINT focus_sessions_check"))
        for session_id, user_id, started, ended in sessions:
            connection.execute(sa.text("INSERT INTO focus_sessions (id, user_id, started_at, ended_at) "
                                       "VALUES (:id, :user_id, :started, :ended)"),
                               {"id": session_id, "user_id": user_id, "started": started, "ended": ended})

    result = run_streaks(database_url, devnet, yesterday, enabled=True)

    found = query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=result.run_id)
    flagged = found[found["field"] == "focus_sessions"]
    doubtful = [long_session, backwards, never_ended]
    assert set(flagged["entity_id"]) == {f"user_{p.user_id}" for p in doubtful}
    assert set(flagged["drift_class"]) == {"INVARIANT_VIOLATION"}
    reasons = {d["sessions"][0]["session_id"]: d["sessions"][0]["reason"] for d in flagged["details"]}
    assert reasons["implausible-long"].startswith("lasts 9999 days 23:59:00")
    assert reasons["implausible-backwards"] == "ends before it starts"
    assert reasons["implausible-open"] == "has no end, and started more than 48 h before"
    wallets = {p.wallet for p in doubtful}
    assert not found[found["entity_id"].isin(wallets)]["drift_class"].isin(["VALUE_MISMATCH"]).any()
    syncs = query(engine, "SELECT player_address FROM recon.streak_syncs WHERE run_id = :r", r=result.run_id)
    assert not set(syncs["player_address"]) & wallets
    assert {contract.profile(p.wallet)["current_streak"] for p in doubtful} <= {p.chain_streak for p in doubtful}
    computed = result.output_for_node("computed_user_streaks")
    assert not computed.streaks.set_index("user_id").loc[[p.user_id for p in doubtful], "computable"].any()
    assert computed.streaks.set_index("user_id").loc[in_progress.user_id, "computable"]
