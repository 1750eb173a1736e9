"""The sharded streams sweep: a 4-shard backfill with the multiprocess executor, on the
Dagster instance of deploy/celery/dagster.yaml (runs in PostgreSQL), finds exactly what
one unsharded run finds, and each shard reads only its own streams."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from recon_demo.worlds.streams import StreamsWorld, build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline import localenv
from reconciliation_pipeline.core.cadences import SHARD_COUNT, daily_sharded_partitions, shard_of
from reconciliation_pipeline.defs.streams.definitions import STREAMS as STREAMS_DOMAIN
from reconciliation_pipeline.instance.storage import PooledPostgresEventLogStorage, PooledPostgresRunStorage
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

DEPLOY = localenv.PROJECT_ROOT / "deploy"

FINDING = ["entity_type", "entity_id", "field", "drift_class", "severity", "db_value", "chain_value", "delta"]
STREAMS = 1000
"""Enough for every shard to need two getLedgerEntries batches."""
SWEEP_JOB = "streams_sharded_sweep"
ESCROW_JOB = "streams_sharded_escrow"

MULTIPROCESS = {
    "execution": {
        "config": {
            "multiprocess": {
                "max_concurrent": 2,
                # Steps fork from a server that imported the pipeline once, instead of each
                # step importing Dagster, pandas and the SDK again.
                "start_method": {"forkserver": {"preload_modules": ["reconciliation_pipeline.defs.streams.definitions"]}},
            }
        }
    }
}


def sharded_job(name: str, database_url: str, rpc_url: str) -> dg.JobDefinition:
    """The job rebuilt in every step process (the multiprocess executor reconstructs it)."""
    defs = dg.Definitions.merge(STREAMS_DOMAIN.definitions,
                                dg.Definitions(resources=make_resources(database_url, rpc_url)))
    return defs.resolve_job_def(name)


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime) -> StreamsWorld:
    world = build_streams_world(STREAMS, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    return world


def with_values(config: object, values: dict[str, object]) -> object:
    """The instance YAML with each `{env: NAME}` replaced by `values[NAME]`: step processes
    fork from a server started once per session, so they must not read this test's environment."""
    if isinstance(config, dict):
        if set(config) == {"env"}:
            return values[config["env"]]
        return {key: with_values(value, values) for key, value in config.items()}
    return config


@pytest.fixture
def instance(pg_admin_url: str, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """The Celery deployment's instance (deploy/celery/dagster.yaml) on a fresh PostgreSQL
    database: what the distributed executor would run on, the executor aside."""
    name = f"dagster_test_{uuid.uuid4().hex[:12]}"
    localenv.ensure_database(pg_admin_url, name)
    deployment = with_values(yaml.safe_load((DEPLOY / "celery" / "dagster.yaml").read_text()), {
        "DAGSTER_PG_URL": localenv.dagster_storage_url(localenv.with_database(pg_admin_url, name)),
        "DAGSTER_SHARED_STORAGE": str(tmp_path / "shared"),
        "DAGSTER_MAX_CONCURRENT_RUNS": 4,
    })
    try:
        with dg.instance_for_test(temp_dir=str(tmp_path), overrides=deployment) as instance:
            yield instance
    finally:
        localenv.drop_database(pg_admin_url, name)


def run_partition(instance: dg.DagsterInstance, job_name: str, partition: str, database_url: str,
                  devnet: DevnetServer) -> dg.ExecutionResult:
    # Step processes import this module by name; the tests are not installed, so they get the root.
    job = dg.build_reconstructable_job(
        __name__, sharded_job.__name__, reconstructable_args=(job_name, database_url, devnet.url),
        reconstructor_working_directory=str(Path(__file__).resolve().parents[3]),
    )
    with dg.execute_job(job, instance, run_config=MULTIPROCESS, tags={"dagster/partition": partition}) as result:
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        assert any(e.event_type == dg.DagsterEventType.STEP_WORKER_STARTING for e in result.all_events)
        return result


def persisted_findings(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text("SELECT * FROM recon.discrepancies"), connection)


def as_rows(frame: pd.DataFrame) -> list[tuple]:
    rows = frame[FINDING].astype(object).where(frame[FINDING].notna(), None)
    return sorted(map(tuple, rows.itertuples(index=False)), key=repr)


def keys_in_shard(world: StreamsWorld, shard: int) -> int:
    ids = pd.Series([*world.db["stream_id"], *world.chain_only_ids]).drop_duplicates()
    return int((shard_of(ids) == shard).sum())


def stream_shards(entity_ids: pd.Series) -> pd.Series:
    return shard_of(entity_ids.str.removeprefix("stream_").map(int))


def runs_by_partition(frame: pd.DataFrame) -> dict[str, set[str]]:
    return frame.groupby("partition_key")["run_id"].agg(set).to_dict()


def test_a_four_shard_backfill_finds_what_one_run_finds_and_each_shard_reads_only_its_streams(
    world: StreamsWorld, database_url: str, engine: sa.Engine, ledger: DevnetLedger, devnet: DevnetServer,
    instance: dg.DagsterInstance, yesterday: str,
) -> None:
    # The deployment's storages keep their connections, as the packaged instance's do.
    assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
    assert isinstance(instance.run_storage, PooledPostgresRunStorage)
    shards = [f"{yesterday}|{shard}" for shard in range(SHARD_COUNT)]
    assert shards == [key for key in daily_sharded_partitions.get_partition_keys() if key.startswith(yesterday)]
    requests = {}
    for partition in shards:
        ledger.reset_counters()
        run_partition(instance, SWEEP_JOB, partition, database_url, devnet)
        requests[partition] = ledger.request_counts["getLedgerEntries"]
    run_partition(instance, ESCROW_JOB, yesterday, database_url, devnet)

    single = dg.materialize(STREAMS_DOMAIN.assets("nightly"), resources=make_resources(database_url, devnet.url), partition_key=yesterday)
    found = persisted_findings(engine)
    unsharded = found[found["run_id"] == single.run_id]
    sharded = found[found["partition_key"].str.startswith(f"{yesterday}|")]
    assert as_rows(sharded) == as_rows(unsharded)
    assert len(unsharded) == len(world.expected_findings())

    for shard, partition in enumerate(shards):
        expected_keys = keys_in_shard(world, shard)
        assert requests[partition] == -(-expected_keys // 200) == 2
        read = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("chain_streams_shard"), asset_partitions=[partition]), limit=1
        ).records[0].asset_materialization
        assert read.metadata["dagster/row_count"].value == expected_keys
        streams = sharded[sharded["partition_key"] == partition]
        assert len(streams) and (streams["entity_type"] == "stream").all()
        assert (stream_shards(streams["entity_id"]) == shard).all()
    escrow = sharded[sharded["partition_key"] == f"{yesterday}|escrow"]
    assert set(escrow["entity_type"]) == {"escrow"}


def test_rerunning_one_shard_replaces_only_its_findings_and_resolves_none_of_the_others(
    world: StreamsWorld, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str,
) -> None:
    resources = make_resources(database_url, devnet.url)
    with dg.instance_for_test() as instance:
        for shard in range(SHARD_COUNT):
            dg.materialize(STREAMS_DOMAIN.assets("sharded"), resources=resources, partition_key=f"{yesterday}|{shard}", instance=instance)
        before = persisted_findings(engine)
        rerun = dg.materialize(STREAMS_DOMAIN.assets("sharded"), resources=resources, partition_key=f"{yesterday}|2", instance=instance)
    after = persisted_findings(engine)
    assert as_rows(after) == as_rows(before)
    runs_before, runs_after = runs_by_partition(before), runs_by_partition(after)
    assert runs_after.pop(f"{yesterday}|2") == {rerun.run_id} != runs_before.pop(f"{yesterday}|2")
    assert runs_after == runs_before
    with engine.connect() as connection:
        incidents = pd.read_sql(sa.text("SELECT entity_id, state FROM recon.drift_incidents"), connection)
    in_shard_2 = stream_shards(incidents["entity_id"]) == 2
    assert set(incidents.loc[in_shard_2, "state"]) == {"confirmed"}
    assert set(incidents.loc[~in_shard_2, "state"]) == {"open"}


def test_the_deployment_files_parse_and_the_run_config_fits_the_sweep_job() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {f.relative_to(DEPLOY).as_posix() for f in files} >= {
        "celery/dagster.yaml", "celery/worker.yaml", "celery/workspace.yaml", "celery/run_config.yaml",
        "k8s/values.yaml",
    }
    documents = {f.relative_to(DEPLOY).as_posix(): list(yaml.safe_load_all(f.read_text())) for f in files}
    assert all(docs and all(isinstance(d, dict) for d in docs) for docs in documents.values())
    job = sharded_job(SWEEP_JOB, "postgresql://unused", "http://unused")
    result = dg.validate_run_config(job, documents["celery/run_config.yaml"][0])
    assert result["ops"]["stream_shard_repairs"]["config"] == {"apply": True, "dry_run": False}
    assert documents["celery/worker.yaml"][0]["execution"]["config"] == {
        "broker": {"env": "CELERY_BROKER_URL"}, "backend": {"env": "CELERY_BACKEND_URL"},
    }
