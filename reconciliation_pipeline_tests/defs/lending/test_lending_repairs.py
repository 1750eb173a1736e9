"""Lending repairs at the repairs level: every kind of repair planned from a real run's
findings, then the app writes between the snapshot and the repair, and its write wins."""

from __future__ import annotations

import sqlalchemy as sa

from recon_demo.worlds.lending import CONCURRENT_WRITE_LOAN, RESOLVABLE_PROVISIONAL, LendingWorld
from reconciliation_pipeline.core import repairs
from reconciliation_pipeline.core.drift_store import RunInfo
from reconciliation_pipeline_tests.defs.lending.conftest import run_nightly, table
from soroban_devnet.server import DevnetServer

APP_WRITES = (
    # the borrower repaid in full and the app recorded it first
    "UPDATE loans SET status = 'liquidated' WHERE chain_loan_id = :loan",
    # the app resolved the provisional id itself (to the same real id)
    "UPDATE loans SET chain_loan_id = :real_id, is_provisional = false WHERE id = :provisional",
    # the app's own poller settled the transaction
    "UPDATE transactions SET status = 'succeeded' WHERE tx_hash = :tx",
    # the app caught up with the missed event and inserted the loan under its own id
    "INSERT INTO loans (id, chain_loan_id, borrower_address, principal, outstanding, status)"
    " VALUES ('app-' || :missed, :missed, :borrower, 1, 1, 'active')",
)


def test_a_row_the_app_changed_after_the_snapshot_is_left_as_the_app_wrote_it(
    world: LendingWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str
) -> None:
    result = run_nightly(database_url, devnet, yesterday)  # plans, applies nothing
    plan = result.output_for_node("lending_discrepancies").repair_plan
    assert len(plan) == 11

    missed = int(world.drift("missed_loan_created_event").expected[0].entity_id.removeprefix("loan_"))
    real_id = int(world.drift("resolvable_provisional_id").expected[0].chain_value)
    settled_tx = world.drift("pending_tx_succeeded").expected[0].entity_id.removeprefix("tx_")
    values = {"loan": CONCURRENT_WRITE_LOAN, "real_id": real_id, "provisional": RESOLVABLE_PROVISIONAL,
              "tx": settled_tx, "missed": missed, "borrower": world.loans_chain["borrower"].iloc[0]}
    with engine.begin() as connection:
        for statement in APP_WRITES:
            connection.execute(sa.text(statement), values)

    run = RunInfo(run_id="apply-later", job_name="test", partition_key=yesterday)
    outcome = repairs.apply_plan(engine, run, plan)
    assert (outcome.applied, outcome.skipped, outcome.failed) == (7, 4, 0)

    loans = table(engine, "SELECT id, chain_loan_id::int AS chain_id, status, principal::text AS principal FROM loans")
    by_chain_id = loans.dropna(subset=["chain_id"]).set_index("chain_id")
    assert by_chain_id.at[CONCURRENT_WRITE_LOAN, "status"] == "liquidated"
    assert by_chain_id.at[real_id, "id"] == RESOLVABLE_PROVISIONAL
    assert (by_chain_id.at[missed, "id"], by_chain_id.at[missed, "principal"]) == (f"app-{missed}", "1")
    assert by_chain_id.at[2, "status"] == "defaulted"  # an untouched row is still repaired
    assert table(engine, "SELECT status FROM transactions WHERE tx_hash = :h", h=settled_tx)["status"][0] == "succeeded"

    skipped = table(engine, "SELECT r.entity_id, r.field, r.reason, a.action, a.after_value FROM recon.repairs r"
                            " JOIN recon.repair_audit a USING (repair_id) WHERE r.state = 'skipped' ORDER BY 1")
    assert list(skipped["entity_id"]) == sorted([f"loan_{CONCURRENT_WRITE_LOAN}", f"loan_{RESOLVABLE_PROVISIONAL}",
                                                 f"loan_{missed}", f"tx_{settled_tx}"])
    assert set(skipped["action"]) == {"skipped"} and skipped["after_value"].isna().all()
    assert skipped["reason"].str.contains("application's write wins").all()

    again = repairs.apply_plan(engine, run, plan)
    assert (again.applied, again.skipped) == (0, 0)
    assert table(engine, "SELECT count(*) AS n FROM recon.repair_audit")["n"][0] == 11
