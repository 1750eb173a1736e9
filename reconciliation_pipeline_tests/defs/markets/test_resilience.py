"""The 5-minute reconciliation on a flaky, slow RPC: markets and balances together,
as the job runs them. One failing batch never stops the others; the whole run
ends within its time limit, recording what it finished and marking itself partial."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from recon_demo.worlds.balances import (
    BalancesWorld,
    build_balances_world,
    load_balances_into_ledger,
    write_balances_to_db,
)
from recon_demo.worlds.markets import MarketsWorld, build_markets_world, load_markets_into_ledger, write_markets_to_db
from reconciliation_pipeline.chain.reader import NOT_READ_TIME_LIMIT
from reconciliation_pipeline.core.results import Checked
from reconciliation_pipeline_tests.defs.markets.support import (
    as_set,
    frequent_resources,
    persisted_findings,
    run_frequent,
)
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

CHAIN_FRAMES = {"amm_pool": ("chain_market_pools", "market_"), "market": ("chain_market_contracts", "market_"),
                "user": ("chain_usdc_balances", "user_")}
DATABASE_ONLY = {"INVALID_ADDRESS", "INVARIANT_VIOLATION"}


@pytest.fixture
def worlds(engine: sa.Engine, ledger: DevnetLedger) -> tuple[MarketsWorld, BalancesWorld]:
    markets, balances = build_markets_world(260), build_balances_world(300)
    write_markets_to_db(engine, markets)
    load_markets_into_ledger(ledger, markets)
    write_balances_to_db(engine, balances)
    load_balances_into_ledger(ledger, balances)
    return markets, balances


def read_outcomes(result: dg.ExecuteInProcessResult) -> pd.DataFrame:
    """(entity_type, entity_id, outcome): `reconciled`, `failed` (read error) or `not_read` (time limit)."""
    parts = []
    for entity_type, (node, prefix) in CHAIN_FRAMES.items():
        snapshot = result.output_for_node(node)
        frame = snapshot.frame
        key = "user_id" if entity_type == "user" else "market_id"
        error = frame["read_error"].fillna("")
        outcome = pd.Series("reconciled", index=frame.index)
        outcome[error.str.startswith("read failed")] = "failed"
        outcome[error.str.endswith(NOT_READ_TIME_LIMIT)] = "not_read"
        if snapshot.streamed is not None:
            # A streaming sweep keeps only the entries its findings name: the rest are known by key.
            parts.append(_streamed_outcomes(entity_type, snapshot.streamed.checked,
                                            set(prefix + frame.loc[outcome == "failed", key].astype(str))))
            continue
        parts.append(pd.DataFrame({"entity_type": entity_type, "entity_id": prefix + frame[key].astype(str),
                                   "outcome": outcome}))
    return pd.concat(parts, ignore_index=True)


def _streamed_outcomes(entity_type: str, checked: Checked, failed: set[str]) -> pd.DataFrame:
    compared = [i for part in checked.keyed for i in part.entity_ids()]
    unchecked = [i for part in checked.keyed_unchecked for i in part.entity_ids()]
    return pd.DataFrame({"entity_type": entity_type, "entity_id": [*compared, *unchecked],
                         "outcome": ["reconciled"] * len(compared)
                         + ["failed" if i in failed else "not_read" for i in unchecked]})


def _entities(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["entity_type"], frame["entity_id"], strict=True))


def _of(findings: pd.DataFrame, entities: set[tuple[str, str]]) -> pd.DataFrame:
    keys = pd.Series(list(zip(findings["entity_type"], findings["entity_id"], strict=True)), index=findings.index,
                     dtype=object)
    return findings[keys.isin(entities)]


def _expected(worlds: tuple[MarketsWorld, BalancesWorld]) -> pd.DataFrame:
    markets, balances = worlds
    return pd.concat([markets.expected_findings(), balances.expected_findings(with_burst=False)], ignore_index=True)


def test_failed_batches_become_read_errors_and_everything_else_is_reconciled(
    worlds: tuple[MarketsWorld, BalancesWorld], ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer,
) -> None:
    ledger.faults = FaultConfig(failure_rate=0.5, failure_seed=5, methods=frozenset({"getLedgerEntries"}))
    result = run_frequent(frequent_resources(database_url, devnet.url, batch_size=25, max_attempts=1))
    assert result.success
    outcomes = read_outcomes(result)
    failed = _entities(outcomes[outcomes["outcome"] == "failed"])
    reconciled = _entities(outcomes[outcomes["outcome"] == "reconciled"])
    assert failed and reconciled
    found = persisted_findings(engine, result.run_id)
    errors = found[found["drift_class"] == "CHAIN_READ_ERROR"]
    failed_errors = _of(errors, failed)
    assert _entities(failed_errors) == failed
    assert all("injected failure" in d["error"] for d in failed_errors["details"])
    assert not _of(found, failed)["drift_class"].isin(["MISSING_ON_CHAIN", "VALUE_MISMATCH", "STATUS_MISMATCH"]).any()
    expected = _expected(worlds)
    assert as_set(_of(found, reconciled)) == as_set(_of(expected, reconciled))
    with engine.connect() as connection:
        statuses = dict(connection.execute(sa.text("SELECT domain, status FROM recon.runs WHERE run_id = :r"),
                                           {"r": result.run_id}).all())
    assert statuses == {"markets": "partial", "balances": "partial"}


def test_a_slow_rpc_stops_at_the_time_limit_and_the_run_ends_cleanly_as_partial(
    worlds: tuple[MarketsWorld, BalancesWorld], ledger: DevnetLedger, database_url: str, engine: sa.Engine,
    devnet: DevnetServer,
) -> None:
    """40 requests of 20 keys, 0.3 s each, 2 in flight, need 6 s; the run may take 6 s in all."""
    limit_s = 6
    ledger.faults = FaultConfig(latency_s=0.3, methods=frozenset({"getLedgerEntries"}))
    instance = dg.DagsterInstance.ephemeral()
    result = run_frequent(
        frequent_resources(database_url, devnet.url, run_time_limit_s=limit_s, batch_size=20, max_in_flight=2,
                           request_timeout_ms=1000),
        instance=instance,
    )
    assert result.success
    stats = instance.get_run_stats(result.run_id)
    assert stats.end_time - stats.start_time <= limit_s

    outcomes = read_outcomes(result)
    not_read = _entities(outcomes[outcomes["outcome"] == "not_read"])
    reconciled = _entities(outcomes[outcomes["outcome"] == "reconciled"])
    assert not_read and reconciled
    assert (outcomes["outcome"] != "failed").all()
    found = persisted_findings(engine, result.run_id)
    assert set(_of(found, not_read)["drift_class"]) <= DATABASE_ONLY
    expected = _expected(worlds)
    assert as_set(_of(found, reconciled)) == as_set(_of(expected, reconciled))
    with engine.connect() as connection:
        runs = pd.read_sql(sa.text("SELECT * FROM recon.runs WHERE run_id = :r"), connection,
                           params={"r": result.run_id}).set_index("domain")
    unread_by_domain = outcomes[outcomes["outcome"] == "not_read"].assign(
        domain=lambda f: f["entity_type"].map({"amm_pool": "markets", "market": "markets", "user": "balances"})
    ).groupby("domain").size()
    for domain, count in unread_by_domain.items():
        assert runs.at[domain, "status"] == "partial"
        assert runs.at[domain, "entities_unchecked"] >= count
    metadata = {
        node: result.asset_materializations_for_node(node)[0].metadata
        for node in ("market_discrepancies", "usdc_balance_discrepancies")
    }
    assert sum(m["errors/time_limit"].value for m in metadata.values()) == len(not_read)
    # holders left unread have no finding to bring them back: the balances watermark
    # does not move past them, so the next run looks at the same changes again
    balances_unread = int(unread_by_domain.get("balances", 0))
    assert metadata["usdc_balance_discrepancies"]["watermark_moved"].value == (balances_unread == 0)
    with engine.connect() as connection:
        watermarks = connection.execute(sa.text(
            "SELECT count(*) FROM recon.sweep_watermarks WHERE domain = 'balances'")).scalar_one()
    assert watermarks == (0 if balances_unread else 1)
