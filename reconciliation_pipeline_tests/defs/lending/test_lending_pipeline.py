"""The lending reconciliation end to end: real PostgreSQL, the devnet over HTTP,
in-process Dagster runs of the real assets on the seeded lending world."""

from __future__ import annotations

import json

import pandas as pd
import sqlalchemy as sa

from recon_demo.worlds.lending import (
    IN_FLIGHT_PROVISIONAL,
    RESOLVABLE_PROVISIONAL,
    UNRESOLVABLE_PROVISIONAL,
    LendingWorld,
    position_entry,
)
from reconciliation_pipeline.core.drift import DriftClass
from reconciliation_pipeline_tests.defs.lending.conftest import as_set, findings_of, run_nightly, run_sweep, table
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer


def _class_of(world: LendingWorld, name: str) -> set[tuple]:
    return as_set(pd.DataFrame([vars(e) for e in world.drift(name).expected]))


def test_first_run_reports_exactly_the_injected_catalogue_by_class(
    world: LendingWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    result = run_nightly(database_url, devnet, yesterday)
    found = findings_of(engine, result.run_id)
    expected = world.expected_findings()
    assert as_set(found) == as_set(expected)
    assert len(found) == len(expected)  # nothing twice, nothing for clean rows

    counts = expected["drift_class"].value_counts().to_dict()
    assert counts == {"STATUS_MISMATCH": 2, "VALUE_MISMATCH": 4, "ORPHANED_PENDING_TX": 3,
                      "UNRESOLVED_PROVISIONAL_ID": 2, "MISSING_IN_DB": 1, "MISSING_ON_CHAIN": 1}
    with engine.connect() as connection:
        recorded = connection.execute(
            sa.text("SELECT finding_counts, status FROM recon.runs WHERE run_id = :r AND domain = 'lending'"),
            {"r": result.run_id},
        ).one()
    assert {k: v for k, v in recorded[0].items() if v} == counts
    assert recorded[1] == "succeeded"
    metadata = result.asset_materializations_for_node("lending_discrepancies")[0].metadata
    assert {k: metadata[f"drift/{k}"].value for k in counts} == counts

    outstanding = found[found["entity_id"] == "loan_3"].iloc[0]
    assert (int(outstanding["delta"]), outstanding["partition_key"]) == (-5_000_000, yesterday)
    assert outstanding["ledger_sequence"] is not None


def test_provisional_ids_are_resolved_by_their_loan_created_event_or_reported_after_grace(
    world: LendingWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    result = run_sweep(database_url, devnet, apply=True)
    found = findings_of(engine, result.run_id)
    provisional = found[found["drift_class"] == DriftClass.UNRESOLVED_PROVISIONAL_ID.value]
    assert as_set(provisional) == (_class_of(world, "resolvable_provisional_id")
                                   | _class_of(world, "unresolvable_provisional_id"))
    real_id = int(world.drift("resolvable_provisional_id").expected[0].chain_value)
    resolvable = provisional[provisional["entity_id"] == f"loan_{RESOLVABLE_PROVISIONAL}"].iloc[0]
    assert resolvable["details"]["submitted_tx_hash"] == world.loans_db.set_index("id").at[
        RESOLVABLE_PROVISIONAL, "submitted_tx_hash"]

    loans = table(engine, "SELECT id, chain_loan_id::int AS chain_id, is_provisional FROM loans WHERE id LIKE 'prov-%'"
                  " ORDER BY id").set_index("id")
    assert (loans.at[RESOLVABLE_PROVISIONAL, "chain_id"], loans.at[RESOLVABLE_PROVISIONAL, "is_provisional"]) == (
        real_id, False)
    assert pd.isna(loans.at[UNRESOLVABLE_PROVISIONAL, "chain_id"]) and pd.isna(loans.at[IN_FLIGHT_PROVISIONAL, "chain_id"])

    second = run_sweep(database_url, devnet, apply=True)
    again = findings_of(engine, second.run_id)
    assert set(again["entity_id"]) == {f"loan_{UNRESOLVABLE_PROVISIONAL}"}
    incidents = table(engine, "SELECT entity_id, state FROM recon.drift_incidents").set_index("entity_id")["state"]
    assert incidents[f"loan_{RESOLVABLE_PROVISIONAL}"] == "resolved"
    assert incidents[f"loan_{UNRESOLVABLE_PROVISIONAL}"] == "confirmed"


def test_orphaned_pending_transactions_are_settled_by_what_get_transaction_says(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    ledger.reset_counters()
    result = run_sweep(database_url, devnet, apply=True)
    found = findings_of(engine, result.run_id)
    orphaned = found[found["drift_class"] == DriftClass.ORPHANED_PENDING_TX.value]
    assert as_set(orphaned) == (_class_of(world, "pending_tx_succeeded") | _class_of(world, "pending_tx_failed")
                                | _class_of(world, "pending_tx_never_landed"))
    assert ledger.request_counts["getTransaction"] == 3  # only the ones past the grace period

    statuses = table(engine, "SELECT tx_hash, status FROM transactions WHERE status <> 'succeeded'"
                     " OR tx_hash = ANY(:h)", h=list(orphaned["entity_id"].str.removeprefix("tx_")))
    by_hash = dict(zip(statuses["tx_hash"], statuses["status"], strict=True))
    for name, settled in (("pending_tx_succeeded", "succeeded"), ("pending_tx_failed", "failed"),
                          ("pending_tx_never_landed", "expired")):
        assert by_hash[world.drift(name).expected[0].entity_id.removeprefix("tx_")] == settled
    assert sorted(by_hash.values()).count("pending") == 1  # the one still in flight
    assert "sendTransaction" not in ledger.request_counts


def test_a_pending_transaction_older_than_the_retention_is_reported_beside_the_other_findings(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    """NOT_FOUND for a submission the RPC no longer holds: the chain cannot tell whether it landed. The
    finding says so (settle_to null, never NaN in the JSON), nothing is repaired, and every other lending
    finding persists beside it, in the 5-minute sweep and in the nightly run."""
    forgotten = "ab" * 32
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO transactions (tx_hash, kind, amount, status, submitted_at) "
                                   "VALUES (:h, 'repay', 5, 'pending', now() - interval '60 days')"), {"h": forgotten})
    for result in (run_nightly(database_url, devnet, yesterday), run_sweep(database_url, devnet, apply=True)):
        found = findings_of(engine, result.run_id)
        mine = found["entity_id"] == f"tx_{forgotten}"
        assert found.loc[mine, ["drift_class", "db_value", "chain_value"]].values.tolist() == [
            [DriftClass.ORPHANED_PENDING_TX.value, "pending", "NOT_FOUND"]]
        details = found.loc[mine, "details"].iloc[0]
        assert details["settle_to"] is None and "retention" in details["reason"]
        assert (~mine).sum() >= 3  # the world's other pending transactions, at least
    nightly = findings_of(engine, partition=yesterday)
    assert as_set(nightly[nightly["entity_id"] != f"tx_{forgotten}"]) == as_set(world.expected_findings())
    assert table(engine, "SELECT status FROM transactions WHERE tx_hash = :h", h=forgotten)["status"][0] == "pending"


def test_an_unreadable_transaction_status_is_a_read_error_not_a_repair(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer
) -> None:
    ledger.faults = FaultConfig(failure_rate=1.0, methods=frozenset({"getTransaction"}))
    result = run_sweep(database_url, devnet, apply=True)
    found = findings_of(engine, result.run_id)
    errors = found[found["drift_class"] == DriftClass.CHAIN_READ_ERROR.value]
    assert len(errors) == 3 and set(errors["entity_type"]) == {"transaction"}
    assert all("injected failure" in d["error"] for d in errors["details"])
    assert table(engine, "SELECT count(*) AS n FROM transactions WHERE status = 'pending'")["n"][0] == 4
    with engine.connect() as connection:
        status = connection.execute(sa.text("SELECT status FROM recon.runs WHERE run_id = :r"),
                                    {"r": result.run_id}).scalar_one()
    assert status == "partial"


def test_applied_repairs_leave_no_repairable_drift_and_are_audited_once(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    ledger.reset_counters()
    first = run_nightly(database_url, devnet, yesterday, apply=True)
    repairs = table(engine, "SELECT entity_id, field, state, observed_value, target_value FROM recon.repairs")
    assert len(repairs) == 11 and set(repairs["state"]) == {"applied"}
    missed = world.drift("missed_loan_created_event").expected[0].entity_id
    inserted = table(engine, "SELECT id, borrower_address, principal::text, outstanding::text, status, "
                             "submitted_tx_hash FROM loans WHERE chain_loan_id = :id",
                     id=int(missed.removeprefix("loan_")))
    chain = world.loans_chain.set_index("loan_id").loc[int(missed.removeprefix("loan_"))]
    assert inserted.iloc[0].tolist()[1:5] == [chain["borrower"], str(chain["principal"]),
                                             str(chain["outstanding"]), chain["status"]]
    insert_target = json.loads(repairs.set_index("entity_id").at[missed, "target_value"])
    assert inserted.iloc[0]["submitted_tx_hash"] == insert_target["created_tx_hash"]

    second = run_nightly(database_url, devnet, yesterday, apply=True)
    found = findings_of(engine, second.run_id)
    assert as_set(found) == (_class_of(world, "loan_missing_on_chain")
                             | _class_of(world, "unresolvable_provisional_id"))
    with engine.connect() as connection:
        audit = connection.execute(sa.text("SELECT repair_id, count(*) FROM recon.repair_audit GROUP BY 1")).all()
        run = connection.execute(sa.text("SELECT repairs_planned, repairs_applied FROM recon.runs WHERE run_id = :r"),
                                 {"r": second.run_id}).one()
    assert len(audit) == 11 and {n for _, n in audit} == {1}
    assert tuple(run) == (0, 0)
    assert table(engine, "SELECT count(*) AS n FROM recon.repairs")["n"][0] == 11
    state = table(engine, "SELECT entity_id, drift_class, state FROM recon.drift_incidents").set_index(
        ["entity_id", "drift_class"])["state"]
    assert state[(missed, "MISSING_IN_DB")] == "resolved"
    assert state[("loan_2", "STATUS_MISMATCH")] == "resolved"
    assert state[(f"loan_{RESOLVABLE_PROVISIONAL}", "UNRESOLVED_PROVISIONAL_ID")] == "resolved"
    assert state[(world.drift("pending_tx_failed").expected[0].entity_id, "ORPHANED_PENDING_TX")] == "resolved"
    assert "sendTransaction" not in ledger.request_counts
    assert first.success and second.success


APP_TABLES = ("SELECT * FROM loans ORDER BY id", "SELECT * FROM transactions ORDER BY id",
              "SELECT * FROM liquidity_positions ORDER BY 1", "SELECT * FROM reputation ORDER BY 1")


def _app_tables(engine: sa.Engine) -> list[pd.DataFrame]:
    return [table(engine, query) for query in APP_TABLES]


def test_dry_run_plans_every_repair_and_changes_nothing(
    world: LendingWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    before = _app_tables(engine)
    result = run_nightly(database_url, devnet, yesterday, apply=True, dry_run=True)
    for was, now in zip(before, _app_tables(engine), strict=True):
        pd.testing.assert_frame_equal(was, now)
    with engine.connect() as connection:
        states = connection.execute(sa.text("SELECT state, count(*) FROM recon.repairs GROUP BY state")).all()
        dry = connection.execute(sa.text("SELECT dry_run FROM recon.runs WHERE run_id = :r"),
                                 {"r": result.run_id}).scalar_one()
    assert states == [("planned", 11)] and dry is True


def test_an_empty_lending_app_reconciles_to_nothing(
    transactions: object, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    result = run_nightly(database_url, devnet, yesterday, apply=True)
    assert findings_of(engine, result.run_id).empty
    assert ledger.request_counts["getLedgerEntries"] == 0  # nothing to read, no request made
    assert run_sweep(database_url, devnet, apply=True).success


def test_amounts_near_the_i128_limit_stay_exact_from_snapshot_to_repair(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    provider = world.positions_chain["provider"].iloc[-1]
    on_chain, in_db = 2**127 - 1, 2**127 - 11
    ledger.put_raw_entry(*position_entry(world.identities.lending_contract_id,
                                         {"provider": provider, "deposited": on_chain, "shares": 7}))
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE liquidity_positions SET deposited = :d, shares = 7 WHERE provider_address = :p"),
                           {"d": in_db, "p": provider})
    result = run_nightly(database_url, devnet, yesterday, apply=True)
    found = findings_of(engine, result.run_id).set_index("entity_id")
    row = found.loc[f"position_{provider}"]
    assert (row["db_value"], row["chain_value"], int(row["delta"])) == (str(in_db), str(on_chain), 10)
    stored = table(engine, "SELECT deposited::text AS d FROM liquidity_positions WHERE provider_address = :p",
                   p=provider)["d"][0]
    assert stored == str(on_chain)
