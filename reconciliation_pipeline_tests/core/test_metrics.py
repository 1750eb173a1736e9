"""Run metrics on a Pushgateway and as Dagster metadata.

A local HTTP receiver on 127.0.0.1 stands in for the Prometheus Pushgateway
(which cannot run here): it records each push, and the body is parsed with
prometheus_client's own parser of the text exposition format.
"""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from recon_demo.worlds.balances import build_balances_world, load_balances_into_ledger, write_balances_to_db
from recon_demo.worlds.markets import build_markets_world, load_markets_into_ledger, write_markets_to_db
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.metrics import DomainRunMetrics, PushgatewayResource
from reconciliation_pipeline_tests.defs.markets.support import frequent_resources, http_receiver, run_frequent
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


@pytest.fixture
def seeded(engine: sa.Engine, ledger: DevnetLedger) -> None:
    markets, balances = build_markets_world(20), build_balances_world(250)
    write_markets_to_db(engine, markets)
    load_markets_into_ledger(ledger, markets)
    write_balances_to_db(engine, balances)
    load_balances_into_ledger(ledger, balances)


def test_each_domain_pushes_parseable_metrics_matching_its_metadata(
    seeded: None, database_url: str, devnet: DevnetServer
) -> None:
    with http_receiver() as gateway:
        result = run_frequent(frequent_resources(database_url, devnet.url, pushgateway_url=gateway.url))
    pushes = {r.path: r for r in gateway.requests}
    assert set(pushes) == {"/metrics/job/reconciliation/domain/markets", "/metrics/job/reconciliation/domain/balances"}
    assert {r.method for r in gateway.requests} == {"PUT"}  # a push replaces the domain's previous figures

    markets = samples(pushes["/metrics/job/reconciliation/domain/markets"].body)
    metadata = result.asset_materializations_for_node("market_discrepancies")[0].metadata
    assert markets[("recon_findings", (("drift_class", "VALUE_MISMATCH"), ("severity", "CRITICAL")))] == 2
    assert markets[("recon_findings", (("drift_class", "STATUS_MISMATCH"), ("severity", "WARN")))] == 2
    assert markets[("recon_findings", (("drift_class", "TTL_EXPIRING"), ("severity", "INFO")))] == 0
    critical = sum(v for (name, labels), v in markets.items()
                   if name == "recon_findings" and ("severity", "CRITICAL") in labels)
    assert critical == metadata["findings_by_severity/CRITICAL"].value == 2
    total = sum(v for (name, _), v in markets.items() if name == "recon_findings")
    assert total == metadata["findings"].value
    duration = markets[("recon_run_duration_seconds", ())]
    assert 0 < duration == pytest.approx(metadata["run_duration_seconds"].value, abs=1e-3)
    assert markets[("recon_errors", (("operation", "decode"),))] == metadata["errors/decode"].value == 1
    assert markets[("recon_errors", (("operation", "read_market_pools"),))] == 0
    assert markets[("recon_run_partial", ())] == 1
    assert metadata["metrics_pushed"].value is True
    assert metadata["metrics"].value["findings"]["VALUE_MISMATCH/CRITICAL"] == 2

    balances = samples(pushes["/metrics/job/reconciliation/domain/balances"].body)
    assert balances[("recon_findings", (("drift_class", "VALUE_MISMATCH"), ("severity", "WARN")))] == 4
    assert balances[("recon_entities_unchecked", ())] == 0
    assert balances[("recon_run_partial", ())] == 0


def test_an_unreachable_pushgateway_never_fails_the_run(seeded: None, database_url: str, devnet: DevnetServer) -> None:
    with http_receiver() as closed:
        url = closed.url
    result = run_frequent(frequent_resources(database_url, devnet.url, pushgateway_url=url))
    assert result.success
    for node in ("market_discrepancies", "usdc_balance_discrepancies"):
        assert result.asset_materializations_for_node(node)[0].metadata["metrics_pushed"].value is False


def test_a_registry_holds_only_its_own_run() -> None:
    """Each push builds a fresh registry: figures of one domain never leak into another's push."""
    findings = {(c.value, s.value): 0 for c in DriftClass for s in Severity}
    one = DomainRunMetrics("markets", "r1", "j", 1.5, "succeeded", {**findings, ("VALUE_MISMATCH", "WARN"): 3})
    two = DomainRunMetrics("balances", "r2", "j", 2.5, "partial", findings, errors={"read_balances": 2})
    first, second = one.registry(), two.registry()
    assert first is not second
    assert first.get_sample_value("recon_findings", {"drift_class": "VALUE_MISMATCH", "severity": "WARN"}) == 3
    assert second.get_sample_value("recon_findings", {"drift_class": "VALUE_MISMATCH", "severity": "WARN"}) == 0
    assert first.get_sample_value("recon_errors", {"operation": "read_balances"}) is None
    assert second.get_sample_value("recon_errors", {"operation": "read_balances"}) == 2
    assert second.get_sample_value("recon_run_partial") == 1


def test_an_invalid_pushgateway_url_fails_at_start_naming_the_variable() -> None:
    with pytest.raises(dg.DagsterInvariantViolationError, match="PROMETHEUS_PUSHGATEWAY_URL"):
        with dg.build_resources({"pushgateway": PushgatewayResource(pushgateway_url="pushgateway:9091")}):
            pass
