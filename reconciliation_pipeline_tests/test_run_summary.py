"""The run summary (`run_summary.py`) of the demo world's runs: CRITICAL first, totals, exact money
per domain, what "partial" meant, and Next queries that run as printed. Real PostgreSQL, real runs
against the devnet over HTTP."""

from __future__ import annotations

import re
from datetime import datetime

import dagster as dg
import pytest
import sqlalchemy as sa

from reconciliation_pipeline.run_summary import format_units, load_run_summary, render_run_summary
from reconciliation_pipeline_tests.demo_runs import pipeline_environment, run_demo_jobs, seed_demo_world
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer


def test_units_are_exact_with_grouped_thousands_and_at_least_two_places() -> None:
    assert format_units(2_500_000_000, 7) == "250.00"
    assert format_units(151_000_011, 7) == "15.1000011"
    assert format_units(1, 7) == "0.0000001"
    assert format_units(-5_000_000, 7) == "-0.50"
    assert format_units(12_345, 0) == "12,345"
    i128_max = 2**127 - 1  # past float's and Decimal's default precision
    assert format_units(i128_max, 7) == "17,014,118,346,046,923,173,168,730,371,588.4105727"


def test_the_summary_puts_critical_first_totals_findings_gives_money_per_domain_and_runnable_queries(
    monkeypatch: pytest.MonkeyPatch, database_url: str, engine: sa.Engine, ledger: DevnetLedger,
    devnet: DevnetServer, reference_time: datetime,
) -> None:
    world = seed_demo_world(engine, ledger, reference_time)
    pipeline_environment(monkeypatch, database_url, devnet.url)
    runs = run_demo_jobs(dg.DagsterInstance.ephemeral(), reference_time)
    text = render_run_summary(engine, runs.run_ids, ui_url="http://127.0.0.1:3999")
    summary = load_run_summary(engine, runs.run_ids)
    expected = world.expected_findings()

    critical = expected[expected["severity"] == "CRITICAL"]
    assert f"Findings: {len(expected)} ({len(critical)} CRITICAL, " in text
    lines = text.splitlines()
    first = lines.index("CRITICAL first:")
    assert {line.split()[2] for line in lines[first + 1:first + 1 + len(critical)]} == set(critical["entity_id"])
    start = lines.index("By severity, domain and class:") + 1
    severities = [line.split()[0] for line in lines[start:lines.index("", start)]]
    assert severities == sorted(severities, key=["CRITICAL", "WARN", "INFO"].index)
    assert severities.count("CRITICAL") == critical["domain"].nunique()
    table_start = next(i for i, line in enumerate(lines) if line.startswith("By domain")) + 2
    table = lines[table_start:lines.index("", table_start)]
    total_row = next(line for line in table if line.strip().startswith("total "))
    assert total_row.split()[4] == str(len(expected))
    assert int(total_row.split()[5]) == len(expected)  # every finding opened its incident

    with engine.connect() as connection:
        amounts = connection.execute(sa.text(
            "SELECT domain, asset_code, asset_decimals, amount_at_stake FROM recon.open_drift_amounts "
            "WHERE asset_code = 'USDC'")).all()
    assert amounts
    for row in amounts:
        domain_row = next(line for line in table if line.strip().startswith(f"{row.domain} "))
        assert f"{format_units(int(row.amount_at_stake), row.asset_decimals)} USDC" in domain_row
    assert {m.asset for m in summary.money["streams"]} >= {"USDC"}

    assert "  none yet: the drift_incident_alerts sensor sends them" in text
    assert "Partial means some entities the run knew of could not be compared" in text
    assert "stream stream_8: undecodable entry" in text
    assert re.search(r"In the UI: http://127\.0\.0\.1:3999/assets/\w+_discrepancies", text)

    queries = [line.strip() for line in lines[lines.index("Next:") + 1:] if line.strip().startswith("SELECT")]
    assert len(queries) == 3
    with engine.connect() as connection:
        results = [connection.execute(sa.text(query.rstrip(";"))).all() for query in queries]
    assert len(results[0]) == len(expected)
    assert {r.domain for r in results[1]} == {"streams", "lending", "markets", "balances"}
