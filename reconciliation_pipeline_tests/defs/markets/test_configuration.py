"""Missing or invalid configuration of the 5-minute reconciliation fails at start, naming the variable.

Resources are bound to environment variables the way `definitions.py` binds them.
"""

from __future__ import annotations

import dagster as dg
import pytest

from reconciliation_pipeline.core.metrics import PushgatewayResource
from reconciliation_pipeline.resources import ReconSettingsResource
from reconciliation_pipeline_tests.defs.markets.support import frequent_resources, run_frequent
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

VALID = {
    "ODDS_MISMATCH_THRESHOLD": "0.01",
    "USDC_BALANCE_TOLERANCE": "10",
    "RUN_TIME_LIMIT_SECONDS": "240",
    "PROMETHEUS_PUSHGATEWAY_URL": "",
}


def env_bound(database_url: str, rpc_url: str) -> dict[str, object]:
    return {
        **frequent_resources(database_url, rpc_url),
        "settings": ReconSettingsResource(
            odds_mismatch_threshold=dg.EnvVar("ODDS_MISMATCH_THRESHOLD"),
            usdc_balance_tolerance=dg.EnvVar.int("USDC_BALANCE_TOLERANCE"),
            run_time_limit_s=dg.EnvVar.int("RUN_TIME_LIMIT_SECONDS"),
        ),
        "pushgateway": PushgatewayResource(pushgateway_url=dg.EnvVar("PROMETHEUS_PUSHGATEWAY_URL")),
    }


def failure_text(database_url: str, rpc_url: str) -> str:
    """Every error message of a run that must fail (raised at launch or reported as events)."""
    try:
        result = run_frequent(env_bound(database_url, rpc_url), raise_on_error=False)
    except Exception as error:  # Dagster raises some configuration errors before the run starts
        return str(error)
    assert not result.success
    return " ".join(
        str(e.event_specific_data.error.to_string())
        for e in result.all_events
        if e.is_failure and e.event_specific_data is not None and getattr(e.event_specific_data, "error", None)
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ODDS_MISMATCH_THRESHOLD", "one percent"),
        ("ODDS_MISMATCH_THRESHOLD", "1.5"),
        ("ODDS_MISMATCH_THRESHOLD", None),
        ("USDC_BALANCE_TOLERANCE", "-1"),
        ("USDC_BALANCE_TOLERANCE", "ten"),
        ("RUN_TIME_LIMIT_SECONDS", "0"),
        ("RUN_TIME_LIMIT_SECONDS", "5"),  # no longer than a request's timeout plus the time to persist
        ("PROMETHEUS_PUSHGATEWAY_URL", "pushgateway:9091"),
    ],
)
def test_bad_configuration_fails_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, database_url: str, ledger: DevnetLedger, devnet: DevnetServer,
    variable: str, value: str | None,
) -> None:
    for name, valid in VALID.items():
        monkeypatch.setenv(name, valid)
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    ledger.reset_counters()
    assert variable in failure_text(database_url, devnet.url)
    assert ledger.request_counts["getLedgerEntries"] == 0


def test_valid_configuration_from_the_environment_runs(
    monkeypatch: pytest.MonkeyPatch, database_url: str, devnet: DevnetServer
) -> None:
    for name, valid in VALID.items():
        monkeypatch.setenv(name, valid)
    assert run_frequent(env_bound(database_url, devnet.url)).success
