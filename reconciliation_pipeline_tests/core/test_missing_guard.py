"""The mass-missing guard: a read where the chain lacks most keys fails closed, naming the likely cause."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest
import sqlalchemy as sa
from stellar_sdk import StrKey

from recon_demo.worlds.streams import StreamsWorld, build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.chain.keys import u64_entry_key
from reconciliation_pipeline.core.missing_guard import MIN_KEYS, MissingGuard, MissingRead, verdict
from reconciliation_pipeline.definitions import defs as load_defs
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

GUARD = MissingGuard(max_share=0.5, jump=0.25)


def _read(keys: int, missing: int) -> MissingRead:
    return MissingRead(domain="streams", entity="streams", scope="nightly", keys=keys, missing=missing,
                       contract_id=None, contract_variable=None, latest_ledger=None)


def test_the_verdict_follows_the_ceiling_the_history_and_the_minimum() -> None:
    assert verdict(_read(MIN_KEYS - 1, MIN_KEYS - 1), GUARD, []) is None
    assert verdict(_read(100, 50), GUARD, []) is None
    assert "RECON_MAX_MISSING_SHARE" in (verdict(_read(100, 51), GUARD, []) or "")
    assert verdict(_read(100, 30), GUARD, [0.01, 0.01]) is None  # two earlier reads are no history yet
    assert "RECON_MISSING_SHARE_JUMP" in (verdict(_read(100, 30), GUARD, [0.01, 0.02, 0.01]) or "")
    assert verdict(_read(100, 30), GUARD, [0.2, 0.2, 0.3]) is None


@pytest.fixture
def world(engine: sa.Engine, ledger: DevnetLedger, reference_time: datetime) -> StreamsWorld:
    world = build_streams_world(450, reference_time=reference_time)
    write_streams_to_db(engine, world)
    load_streams_into_ledger(ledger, world)
    return world


def _run(database_url: str, devnet: DevnetServer, partition: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(STREAMS.assets("nightly"), resources=make_resources(database_url, devnet.url),
                          partition_key=partition, raise_on_error=False)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["chain_streams"]
    return failures[0].event_specific_data.error.message


def _persisted(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as connection:
        return tuple(connection.execute(sa.text(count)).scalar_one()
                     for count in ("SELECT count(*) FROM recon.discrepancies",
                                   "SELECT count(*) FROM recon.drift_incidents",
                                   "SELECT count(*) FROM recon.repairs"))


def _remove_streams(ledger: DevnetLedger, world: StreamsWorld, share: float) -> None:
    ids = sorted(world.db["stream_id"])
    for stream_id in ids[: int(len(ids) * share)]:
        ledger.remove_entry(u64_entry_key(world.identities.stream_contract_id, "Stream", int(stream_id)))


def test_a_chain_missing_every_stream_fails_closed_and_persists_nothing(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    _remove_streams(ledger, world, 1.0)
    result = _run(database_url, devnet, yesterday)
    assert not result.success
    message = _failure(result)
    assert "STREAM_CONTRACT_ID" in message and "RECON_MAX_MISSING_SHARE" in message and "in sync" in message
    assert _persisted(engine) == (0, 0, 0)
    with engine.connect() as connection:
        accepted = connection.execute(sa.text("SELECT accepted FROM recon.chain_reads")).scalars().all()
    assert accepted == [False]


def test_a_jump_far_above_the_entity_history_fails_closed(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    for _ in range(3):
        assert _run(database_url, devnet, yesterday).success
    before = _persisted(engine)
    _remove_streams(ledger, world, 0.4)  # under the 0.5 ceiling, far above the usual ~0.2%
    result = _run(database_url, devnet, yesterday)
    assert not result.success
    assert "RECON_MISSING_SHARE_JUMP" in _failure(result)
    assert _persisted(engine) == before


def test_a_few_missing_streams_are_findings_not_a_failure(
    world: StreamsWorld, ledger: DevnetLedger, database_url: str, engine: sa.Engine, devnet: DevnetServer,
    yesterday: str,
) -> None:
    _remove_streams(ledger, world, 0.1)
    result = _run(database_url, devnet, yesterday)
    assert result.success
    with engine.connect() as connection:
        missing = connection.execute(sa.text(
            "SELECT count(*) FROM recon.discrepancies WHERE drift_class = 'MISSING_ON_CHAIN'")).scalar_one()
    assert missing >= 45


def test_a_wrong_contract_id_fails_the_nightly_job_naming_the_variable(
    pipeline_env: None, world: StreamsWorld, monkeypatch: pytest.MonkeyPatch, yesterday: str
) -> None:
    monkeypatch.setenv("STREAM_CONTRACT_ID", StrKey.encode_contract(bytes(32)))
    result = load_defs().resolve_job_def("nightly_reconciliation").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=yesterday, raise_on_error=False)
    assert not result.success
    assert "STREAM_CONTRACT_ID=" + StrKey.encode_contract(bytes(32)) in _failure(result)
