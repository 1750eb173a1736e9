"""The API for the apps, over real HTTP: authentication and scopes, the OpenAPI document,
discrepancies and incidents with filters, and a dry run launched through a real Dagster
webserver whose run reconciles the devnet and PostgreSQL."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from recon_demo.worlds.streams import StreamsWorld, build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.api.auth import TokenConfigError, Tokens
from reconciliation_pipeline.api.command import settings_from_environment
from reconciliation_pipeline.api.launch import launch_plans
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline_tests.api.conftest import (
    LAUNCH_TOKEN,
    READ_TOKEN,
    WRONG_TOKEN,
    api_server,
    dagster_webserver,
)
from reconciliation_pipeline_tests.conftest import make_resources
from reconciliation_pipeline_tests.demo_runs import pipeline_environment
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

TOKENS = {"RECON_API_READ_TOKENS": READ_TOKEN, "RECON_API_LAUNCH_TOKENS": LAUNCH_TOKEN}
STREAM_2 = {"field": "released", "drift_class": "VALUE_MISMATCH", "severity": "WARN", "status": "drift",
            "db_value": "25005000000", "chain_value": "25000000000", "delta": "-5000000"}


@pytest.fixture
def streams(engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime) -> StreamsWorld:
    world = build_streams_world(30, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    return world


def reconcile_streams(database_url: str, rpc_url: str, partition: str) -> str:
    result = dg.materialize(STREAMS.assets("nightly"), resources=make_resources(database_url, rpc_url),
                            partition_key=partition, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return result.run_id


def test_the_api_refuses_missing_and_wrong_tokens_and_serves_discrepancies_and_incidents(
    streams: StreamsWorld, database_url: str, devnet: DevnetServer, yesterday: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    run_id = reconcile_streams(database_url, devnet.url, yesterday)
    with api_server({"DATABASE_URL": database_url, **TOKENS}) as api:
        missing = api.get("/v1/discrepancies", token=None)
        assert (missing.status_code, missing.headers["WWW-Authenticate"]) == (401, "Bearer")
        assert missing.json() == {"detail": "missing bearer token"}
        wrong = api.get("/v1/discrepancies", token=WRONG_TOKEN)
        assert wrong.status_code == 401 and wrong.json() == {"detail": "invalid token"}
        assert api.get("/v1/discrepancies", token=READ_TOKEN[:-1]).status_code == 401
        out_of_scope = api.post("/v1/reconciliations", {"domain": "streams"}, token=READ_TOKEN)
        assert out_of_scope.status_code == 403 and out_of_scope.json() == {"detail": "this token lacks the launch scope"}
        assert api.get("/v1/incidents", token=LAUNCH_TOKEN).status_code == 200  # launch includes read

        found = api.get("/v1/discrepancies", domain="streams", entity_id="stream_2")
        assert found.status_code == 200
        (stream_2,) = found.json()["discrepancies"]
        assert {k: stream_2[k] for k in STREAM_2} == STREAM_2  # both values, exact
        assert (stream_2["run_id"], stream_2["partition_key"], stream_2["incident_state"]) == (run_id, yesterday, "open")
        assert stream_2["amount_at_stake"] == "5000000"
        assert stream_2["asset"]["contract_id"] == streams.identities.usdc_contract_id
        assert stream_2["asset"]["code"] == "USDC" and stream_2["asset"]["decimals"] == 7

        every = api.get("/v1/discrepancies", domain="streams", limit=1000).json()["discrepancies"]
        assert len(every) == len(streams.expected_findings())
        critical = api.get("/v1/discrepancies", severity="CRITICAL").json()["discrepancies"]
        assert {d["severity"] for d in critical} == {"CRITICAL"} and len(critical) == sum(
            1 for d in every if d["severity"] == "CRITICAL")
        first = api.get("/v1/discrepancies", domain="streams", limit=5).json()
        rest = api.get("/v1/discrepancies", domain="streams", limit=1000, after=first["next_after"]).json()
        assert [d["discrepancy_id"] for d in first["discrepancies"] + rest["discrepancies"]] == [
            d["discrepancy_id"] for d in every]
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert api.get("/v1/discrepancies", since=later).json()["discrepancies"] == []
        assert api.get("/v1/discrepancies", severity="URGENT").status_code == 422
        assert api.get("/v1/incidents", state="sleeping").status_code == 422

        incidents = api.get("/v1/incidents", domain="streams", state="open").json()["incidents"]
        assert len(incidents) == len(every)
        one = next(i for i in incidents if i["entity_id"] == "stream_2" and i["field"] == "released")
        detail = api.get(f"/v1/incidents/{one['incident_id']}").json()
        assert (detail["last_db_value"], detail["last_chain_value"]) == ("25005000000", "25000000000")
        assert [(e["event"], e["actor"], e["run_id"]) for e in detail["events"]] == [("opened", "pipeline", run_id)]
        assert api.get("/v1/incidents/987654").status_code == 404

        document = api.get("/openapi.json", token=None).json()
        assert {"/v1/discrepancies", "/v1/incidents", "/v1/incidents/{incident_id}", "/v1/reconciliations",
                "/v1/runs/{run_id}", "/v1/runs/{run_id}/discrepancies"} <= set(document["paths"])
        assert document["components"]["securitySchemes"]["HTTPBearer"] == {
            "type": "http", "scheme": "bearer", "description": "A read or launch token (RECON_API_*_TOKENS)."}
        assert "db_value" in document["components"]["schemas"]["Discrepancy"]["properties"]
    assert "GET /v1/discrepancies" in caplog.text  # the access log was captured ...
    assert [t for t in (READ_TOKEN, LAUNCH_TOKEN, WRONG_TOKEN) if t in caplog.text] == []  # ... and holds no token


def test_tokens_are_checked_by_digest_and_a_weak_configuration_is_refused() -> None:
    tokens = Tokens.from_variables(f"{READ_TOKEN}, another-read-token-abcdefghijklmn", LAUNCH_TOKEN)
    assert tokens.scopes_of(READ_TOKEN) == {"read"}
    assert tokens.scopes_of("another-read-token-abcdefghijklmn") == {"read"}
    assert tokens.scopes_of(LAUNCH_TOKEN) == {"read", "launch"}
    assert tokens.scopes_of(WRONG_TOKEN) is None and tokens.scopes_of("") is None
    with pytest.raises(TokenConfigError, match="no API token"):
        Tokens.from_variables("", " , ")
    with pytest.raises(TokenConfigError, match="token 1 of RECON_API_LAUNCH_TOKENS must be at least 24") as error:
        Tokens.from_variables(READ_TOKEN, "short-secret")
    assert "short-secret" not in str(error.value)
    with pytest.raises(TokenConfigError):
        settings_from_environment({"DATABASE_URL": "postgresql://unused/db"})


def test_each_domain_launches_its_primary_scope_and_a_dry_run_leaves_out_chain_writes() -> None:
    plans = launch_plans()
    assert set(plans) == {"balances", "lending", "markets", "streaks", "streams"}
    assert (plans["streams"].job_name, plans["streams"].partitioned) == ("nightly_reconciliation", True)
    assert (plans["markets"].job_name, plans["markets"].partitioned) == ("markets_balances_reconciliation", False)
    assert "stream_repairs" in plans["streams"].asset_keys and "chain_streams_incremental" not in plans[
        "streams"].asset_keys
    assert plans["streams"].run_config(True) == {"ops": {"stream_repairs": {"config": {"apply": False,
                                                                                        "dry_run": True}}}}
    streaks = plans["streaks"]
    assert streaks.writes_chain == ("streak_syncs",)
    assert "streak_syncs" not in streaks.selection(dry_run=True) and "streak_syncs" in streaks.selection(False)


def test_a_launch_token_starts_a_dry_run_through_dagster_and_reads_its_discrepancies(
    streams: StreamsWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, engine: sa.Engine,
    devnet: DevnetServer, yesterday: str,
) -> None:
    env = pipeline_environment(monkeypatch, database_url, devnet.url, **TOKENS)
    with dagster_webserver(env, tmp_path / "dagster_home") as webserver:
        with api_server({**env, "DAGSTER_WEBSERVER_URL": webserver}) as api:
            assert api.post("/v1/reconciliations", {"domain": "stream"}).status_code == 422
            assert api.post("/v1/reconciliations", {"domain": "markets", "partition": yesterday}).status_code == 422
            launched = api.post("/v1/reconciliations", {"domain": "streams", "dry_run": True, "partition": yesterday})
            assert launched.status_code == 202, launched.text
            body = launched.json()
            assert (body["domain"], body["job_name"], body["dry_run"], body["partition"]) == (
                "streams", "nightly_reconciliation", True, yesterday)
            run_id = body["run_id"]
            assert body["status_url"].endswith(f"/v1/runs/{run_id}")
            deadline = time.monotonic() + 240
            while (status := api.get(f"/v1/runs/{run_id}").json()["status"]) not in ("SUCCESS", "FAILURE"):
                assert time.monotonic() < deadline, f"run {run_id} still {status}"
                time.sleep(1)
            assert status == "SUCCESS", (tmp_path / "dagster_home" / "webserver.log").read_text()[-3000:]
            run = api.get(f"/v1/runs/{run_id}").json()
            (streams_run,) = run["domains"]
            assert (streams_run["domain"], streams_run["dry_run"], streams_run["partition_key"]) == (
                "streams", True, yesterday)
            assert streams_run["repairs_planned"] > 0 and streams_run["repairs_applied"] == 0
            assert streams_run["in_flight"] == 0
            found = api.get(f"/v1/runs/{run_id}/discrepancies").json()
            assert found["status"] == "SUCCESS"
            stream_2 = [d for d in found["discrepancies"] if d["entity_id"] == "stream_2"]
            assert [{k: d[k] for k in STREAM_2} for d in stream_2] == [STREAM_2]
            assert len(found["discrepancies"]) == len(streams.expected_findings())
            assert api.get("/v1/runs/not-a-run").status_code == 404
            assert api.get(f"/v1/runs/{run_id}", token=None).status_code == 401
    with engine.connect() as connection:  # a dry run wrote nothing to the app's tables
        released = connection.execute(sa.text("SELECT released_amount::text FROM streams WHERE id = 2")).scalar_one()
        states = set(connection.execute(sa.text("SELECT state FROM recon.repairs")).scalars())
    assert released == "25005000000" and states == {"planned"}


def test_the_deploy_configuration_runs_the_api_with_its_variables_from_secrets() -> None:
    import yaml

    from reconciliation_pipeline.localenv import PROJECT_ROOT
    from reconciliation_pipeline.settings import SETTINGS_BY_NAME

    deployment, service = yaml.safe_load_all((PROJECT_ROOT / "deploy" / "k8s" / "api.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["recon", "api"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert {e["name"] for e in container["env"]} <= set(SETTINGS_BY_NAME)
    assert {s["secretRef"]["name"] for s in container["envFrom"]} == {"reconciliation-pipeline-env",
                                                                       "reconciliation-api-tokens"}
    assert not any(e["name"].endswith("TOKENS") for e in container["env"])  # tokens only from a secret
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert "\napi: setup" in (PROJECT_ROOT / "Makefile").read_text()
