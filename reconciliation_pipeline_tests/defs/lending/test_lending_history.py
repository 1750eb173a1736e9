"""Lending days beyond getEvents's window, replayed from getLedgers metadata.

The devnet keeps events for a shorter window than the ledgers getLedgers serves (as an RPC
backed by a ledger data store does). A day that has left the event window but not the ledger
window is indexed from the ledgers' metadata: the same events, the same findings as when the day
was inside the event window, and the asset says which source it used. A broken hash chain or a
missing ledger in the replayed day is a finding, which resolves once the day replays cleanly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from recon_demo.worlds.lending import LendingWorld
from reconciliation_pipeline_tests.defs.lending.conftest import as_set, findings_of, run_nightly, table
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

EVENT_ROWS = ("SELECT event_id, partition_key, ledger, ledger_closed_at, tx_hash, event_type, loan_id::text, address,"
              " amount::text, loan_status, decode_error FROM recon.lending_events ORDER BY event_id")
LEDGERS_PER_DAY = 17_280


def _day(reference_time: datetime, days_back: int) -> str:
    return (reference_time - timedelta(days=days_back)).strftime("%Y-%m-%d")


def _events_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    return {k: v.value for k, v in result.asset_materializations_for_node("lending_events")[0].metadata.items()}


def _ledgers_of(ledger: DevnetLedger, day: str) -> range:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    first = ledger.ledger_closed_by(start.timestamp()) + 1
    return range(first, ledger.ledger_closed_by((start + timedelta(days=1)).timestamp()) + 1)


def test_a_day_past_the_event_window_is_replayed_with_the_same_events_and_findings(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    reference_time: datetime,
) -> None:
    day = _day(reference_time, 2)
    inside = run_nightly(database_url, devnet, day)
    assert _events_metadata(inside)["event_source"] == "getEvents"
    events_inside = table(engine, EVENT_ROWS)
    findings_inside = as_set(findings_of(engine, inside.run_id))

    # Events now reach back to the start of yesterday: the day before has left their window.
    ledger.retention_window = ledger.latest_ledger - _ledgers_of(ledger, _day(reference_time, 1))[0] + 1
    assert ledger.oldest_ledger > _ledgers_of(ledger, day)[-1]
    beyond = run_nightly(database_url, devnet, day)
    metadata = _events_metadata(beyond)
    assert metadata["event_source"] == "getLedgers"
    assert metadata["replay_ledgers"] >= LEDGERS_PER_DAY - 1 and metadata["replay_problems"] == 0
    pd.testing.assert_frame_equal(table(engine, EVENT_ROWS), events_inside)
    assert len(events_inside) > 0 and set(events_inside["partition_key"]) == {day}
    assert as_set(findings_of(engine, beyond.run_id)) == findings_inside
    replays = table(engine, "SELECT purpose, source, partition_keys FROM recon.ledger_replays")
    assert replays.to_dict("records") == [{"purpose": "lending_events", "source": "getLedgers",
                                           "partition_keys": [day]}]


def test_a_day_neither_window_serves_is_refused_naming_both(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    reference_time: datetime,
) -> None:
    ledger.retention_window = LEDGERS_PER_DAY
    ledger.ledger_retention_window = 2 * LEDGERS_PER_DAY
    result = run_nightly(database_url, devnet, _day(reference_time, 3), raise_on_error=False)
    assert not result.success
    messages = " ".join(str(e.event_specific_data.error.message) for e in result.all_events
                        if e.is_step_failure and e.event_specific_data is not None)
    assert f"oldest ledger available is {ledger.oldest_ledger}" in messages
    assert f"the oldest ledger it serves is {ledger.latest_ledger - 2 * LEDGERS_PER_DAY + 1}" in messages
    assert table(engine, "SELECT count(*) AS n FROM recon.lending_events")["n"][0] == 0


def test_a_broken_chain_and_a_missing_ledger_in_a_replayed_day_are_findings_until_it_replays_cleanly(
    world: LendingWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    reference_time: datetime,
) -> None:
    day = _day(reference_time, 2)
    ledger.retention_window = LEDGERS_PER_DAY
    ledgers = _ledgers_of(ledger, day)
    broken, missing = ledgers[5_000], ledgers[9_000]
    ledger.faults = FaultConfig(broken_ledgers=frozenset({broken}), missing_ledgers=frozenset({missing}))
    first = run_nightly(database_url, devnet, day)
    found = findings_of(engine, first.run_id)
    history = found[found["entity_type"] == "ledger"].set_index("entity_id")
    # The forged ledger breaks the chain twice: its own previous hash, and the next ledger's.
    assert set(history.index) == {f"ledger_{broken}", f"ledger_{broken + 1}", f"ledger_{missing}"}
    assert (history.loc[f"ledger_{broken}", ["drift_class", "severity", "field"]].tolist()
            == ["CHAIN_READ_ERROR", "CRITICAL", "previous_ledger_hash"])
    assert (history.loc[f"ledger_{missing}", ["drift_class", "severity", "field"]].tolist()
            == ["CHAIN_READ_ERROR", "WARN", "*"])
    assert history.loc[f"ledger_{missing}", "details"]["kind"] == "missing"
    assert _events_metadata(first)["replay_problems"] == 3
    open_ledgers = table(engine, "SELECT entity_id FROM recon.drift_incidents WHERE entity_type = 'ledger' "
                                 "AND state <> 'resolved'")
    assert set(open_ledgers["entity_id"]) == set(history.index)

    ledger.faults = FaultConfig()
    second = run_nightly(database_url, devnet, day)
    assert findings_of(engine, second.run_id).query("entity_type == 'ledger'").empty
    assert table(engine, "SELECT count(*) AS n FROM recon.drift_incidents WHERE entity_type = 'ledger' "
                         "AND state <> 'resolved'")["n"][0] == 0
