"""`persist_domain_run` against real PostgreSQL: discrepancies, incidents, runs and
the analyst views in schema `recon`."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from pyroaring import BitMap64

from reconciliation_pipeline.core.coverage import record_coverage
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from reconciliation_pipeline.core.drift_store import IncidentPolicy, PersistSummary, RunInfo, persist_domain_run
from reconciliation_pipeline.core.finding_rows import UnstorableFindingsError
from reconciliation_pipeline.core.findings import concat_findings, findings_frame
from reconciliation_pipeline.core.repairs import empty_plan
from reconciliation_pipeline.core.results import Checked, DomainDiff, KeyedEntities

STREAMS = "streams"
LENDING = "lending"
DEFAULT_POLICY = IncidentPolicy(confirm_after_runs=2, grace_minutes=60)


@dataclass(frozen=True)
class F:
    """One finding to persist."""

    entity_id: str
    field: str = "total"
    drift_class: DriftClass = DriftClass.VALUE_MISMATCH
    severity: Severity = Severity.WARN
    db_value: str | None = "100"
    chain_value: str | None = "90"
    delta: int | None = -10
    domain: str = STREAMS
    entity_type: str = "stream"


def frame_of(*found: F) -> pd.DataFrame:
    """A findings frame built the way `core.diff` builds its parts."""
    parts = []
    for f in found:
        one = pd.Index([0])
        parts.append(
            findings_frame(
                domain=f.domain,
                entity_type=f.entity_type,
                entity_id=pd.Series([f.entity_id], index=one, dtype=object),
                entity_key=pd.Series([f.entity_id.rsplit("_", 1)[-1]], index=one, dtype=object),
                field=f.field,
                drift_class=f.drift_class,
                severity=f.severity,
                db_value=pd.Series([f.db_value], index=one, dtype=object),
                chain_value=pd.Series([f.chain_value], index=one, dtype=object),
                delta=pd.Series([f.delta], index=one, dtype=object),
                ledger_sequence=pd.Series([2_000_000], index=one, dtype=object),
                details=pd.Series([{"note": f"{f.entity_id}/{f.field}"}], index=one, dtype=object),
            )
        )
    return concat_findings(parts)


def checked_of(*entity_ids: str, entity_type: str = "stream") -> pd.DataFrame:
    return pd.DataFrame({"entity_type": [entity_type] * len(entity_ids), "entity_id": list(entity_ids)}, dtype=object)


def persist(
    engine: sa.Engine,
    run_id: str,
    found: list[F],
    checked: list[str],
    *,
    partition: str | None = "2026-01-01",
    domain: str = STREAMS,
    unchecked: int = 0,
    policy: IncidentPolicy = DEFAULT_POLICY,
) -> PersistSummary:
    diff = DomainDiff(frame_of(*found), Checked(checked_of(*checked, entity_type="loan" if domain == LENDING else "stream"),
                                                unchecked), 2_000_000, datetime.now(UTC), empty_plan())
    return persist_domain_run(engine, RunInfo(run_id=run_id, job_name="streams_job", partition_key=partition), domain,
                              diff, started_at=datetime.now(UTC), policy=policy)


def incident(engine: sa.Engine, entity_id: str, field: str = "total",
             drift_class: str = "VALUE_MISMATCH", domain: str = STREAMS) -> dict[str, Any]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT * FROM recon.drift_incidents WHERE domain = :d AND entity_id = :e AND field = :f"
                " AND drift_class = :c"
            ),
            {"d": domain, "e": entity_id, "f": field, "c": drift_class},
        ).mappings().all()
    assert len(rows) == 1, rows
    return dict(rows[0])


def discrepancies(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            sa.text("SELECT * FROM recon.discrepancies ORDER BY discrepancy_id"), connection, coerce_float=False
        )


# -- incident lifecycle ---------------------------------------------------------


def test_incident_opens_confirms_resolves_and_reopens(engine: sa.Engine) -> None:
    """open (1 run) -> confirmed (2 consecutive runs) -> resolved (checked, not seen)
    -> re-opened from scratch (occurrences 2, consecutive 1)."""
    drift = F("stream_1", db_value="100", chain_value="90", delta=-10)

    s1 = persist(engine, "run-1", [drift], ["stream_1", "stream_2"], partition="2026-01-01")
    i1 = incident(engine, "stream_1")
    assert (i1["state"], i1["consecutive_runs"], i1["occurrences"]) == ("open", 1, 1)
    assert i1["confirmed_at"] is None and i1["resolved_at"] is None
    assert i1["first_run_id"] == i1["last_run_id"] == "run-1"
    assert (s1.opened_or_seen, s1.confirmed, s1.resolved) == (1, 0, 0)

    later = F("stream_1", db_value="100", chain_value="80", delta=-20)
    s2 = persist(engine, "run-2", [later], ["stream_1", "stream_2"], partition="2026-01-02")
    i2 = incident(engine, "stream_1")
    assert (i2["state"], i2["consecutive_runs"], i2["occurrences"]) == ("confirmed", 2, 1)
    assert i2["confirmed_at"] is not None and i2["resolved_at"] is None
    assert (i2["first_run_id"], i2["last_run_id"]) == ("run-1", "run-2")
    assert i2["first_seen_at"] == i1["first_seen_at"] and i2["last_seen_at"] > i1["last_seen_at"]
    assert (i2["last_chain_value"], int(i2["last_delta"])) == ("80", -20)
    assert (s2.confirmed, s2.resolved) == (1, 0)

    s3 = persist(engine, "run-3", [], ["stream_1", "stream_2"], partition="2026-01-03")
    i3 = incident(engine, "stream_1")
    assert i3["state"] == "resolved" and i3["resolved_at"] is not None
    assert s3.resolved == 1

    s4 = persist(engine, "run-4", [drift], ["stream_1", "stream_2"], partition="2026-01-04")
    i4 = incident(engine, "stream_1")
    assert (i4["state"], i4["consecutive_runs"], i4["occurrences"]) == ("open", 1, 2)
    assert i4["resolved_at"] is None and i4["confirmed_at"] is None
    assert i4["first_run_id"] == "run-4" and i4["first_seen_at"] > i1["first_seen_at"]
    assert (s4.confirmed, s4.resolved) == (0, 0)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM recon.drift_incidents")).scalar_one() == 1


def test_resolved_incident_stays_resolved_while_unseen(engine: sa.Engine) -> None:
    """Once resolved, later clean runs leave the incident (and its resolved_at) alone."""
    persist(engine, "run-1", [F("stream_1")], ["stream_1"])
    persist(engine, "run-2", [], ["stream_1"], partition="2026-01-02")
    resolved = incident(engine, "stream_1")
    persist(engine, "run-3", [], ["stream_1"], partition="2026-01-03")
    again = incident(engine, "stream_1")
    assert again["state"] == "resolved" and again["resolved_at"] == resolved["resolved_at"]


def test_unchecked_entity_keeps_its_incident(engine: sa.Engine) -> None:
    """An entity the run could not check (not in `checked`, e.g. a read error) keeps
    its incident unresolved, while a checked entity's incident resolves."""
    persist(engine, "run-1", [F("stream_1"), F("stream_2")], ["stream_1", "stream_2"])
    summary = persist(engine, "run-2", [], ["stream_2"], partition="2026-01-02", unchecked=1)
    kept, gone = incident(engine, "stream_1"), incident(engine, "stream_2")
    assert kept["state"] == "open" and kept["resolved_at"] is None and kept["consecutive_runs"] == 1
    assert gone["state"] == "resolved" and gone["resolved_at"] is not None
    assert summary.resolved == 1 and summary.status == "partial"


def test_only_the_drift_no_longer_seen_resolves(engine: sa.Engine) -> None:
    """A checked entity that still drifts on another field: the old field's incident
    resolves, the field seen in this run stays open."""
    persist(engine, "run-1", [F("stream_1", field="total")], ["stream_1"])
    status = F("stream_1", field="status", drift_class=DriftClass.STATUS_MISMATCH,
               db_value="active", chain_value="paused", delta=None)
    persist(engine, "run-2", [status], ["stream_1"], partition="2026-01-02")
    assert incident(engine, "stream_1", "total")["state"] == "resolved"
    assert incident(engine, "stream_1", "status", "STATUS_MISMATCH")["state"] == "open"


def test_resolution_is_per_domain(engine: sa.Engine) -> None:
    """A run of one domain never resolves another domain's incident with the same entity id."""
    persist(engine, "run-1", [F("loan_1", domain=LENDING, entity_type="loan")], ["loan_1"], domain=LENDING)
    persist(engine, "run-1", [], ["loan_1"], domain=STREAMS)
    assert incident(engine, "loan_1", domain=LENDING)["state"] == "open"


def test_zero_grace_minutes_confirms_a_new_finding_at_once(engine: sa.Engine) -> None:
    """grace_minutes=0: a finding older than the grace period (i.e. any) is confirmed
    in the run that first sees it, whatever confirm_after_runs says."""
    summary = persist(engine, "run-1", [F("stream_1")], ["stream_1"],
                      policy=IncidentPolicy(confirm_after_runs=5, grace_minutes=0))
    found = incident(engine, "stream_1")
    assert (found["state"], found["consecutive_runs"]) == ("confirmed", 1)
    assert found["confirmed_at"] is not None and summary.confirmed == 1


def test_grace_period_not_elapsed_keeps_incident_open(engine: sa.Engine) -> None:
    """The control case: with a 60-minute grace and confirm_after_runs=5, two runs leave it open."""
    policy = IncidentPolicy(confirm_after_runs=5, grace_minutes=60)
    persist(engine, "run-1", [F("stream_1")], ["stream_1"], policy=policy)
    persist(engine, "run-2", [F("stream_1")], ["stream_1"], partition="2026-01-02", policy=policy)
    found = incident(engine, "stream_1")
    assert (found["state"], found["consecutive_runs"]) == ("open", 2)


def test_confirm_after_one_run(engine: sa.Engine) -> None:
    """confirm_after_runs=1 confirms on first sight even within the grace period."""
    persist(engine, "run-1", [F("stream_1")], ["stream_1"], policy=IncidentPolicy(confirm_after_runs=1))
    assert incident(engine, "stream_1")["state"] == "confirmed"


# -- re-runs --------------------------------------------------------------------


def test_rerunning_a_partition_replaces_its_findings_only(engine: sa.Engine) -> None:
    """A new run of the same partition replaces that partition's discrepancies; another
    partition's rows are untouched; re-persisting the same run id does not duplicate."""
    persist(engine, "run-a", [F("stream_1"), F("stream_2")], ["stream_1", "stream_2"], partition="2026-01-01")
    persist(engine, "run-b", [F("stream_3")], ["stream_3"], partition="2026-01-02")
    before = discrepancies(engine)
    other_partition = before[before["partition_key"] == "2026-01-02"]

    persist(engine, "run-c", [F("stream_1")], ["stream_1", "stream_2"], partition="2026-01-01")
    after = discrepancies(engine)
    day1 = after[after["partition_key"] == "2026-01-01"]
    assert list(day1["run_id"]) == ["run-c"] and list(day1["entity_id"]) == ["stream_1"]
    kept = after[after["partition_key"] == "2026-01-02"]
    assert list(kept["discrepancy_id"]) == list(other_partition["discrepancy_id"])
    assert list(kept["run_id"]) == ["run-b"]

    persist(engine, "run-c", [F("stream_1"), F("stream_4")], ["stream_1", "stream_4"], partition="2026-01-01")
    persist(engine, "run-c", [F("stream_1"), F("stream_4")], ["stream_1", "stream_4"], partition="2026-01-01")
    final = discrepancies(engine)
    day1 = final[final["partition_key"] == "2026-01-01"]
    assert sorted(day1["entity_id"]) == ["stream_1", "stream_4"]
    assert set(day1["run_id"]) == {"run-c"}
    assert list(final[final["partition_key"] == "2026-01-02"]["discrepancy_id"]) == list(other_partition["discrepancy_id"])
    # re-persisting run-c did not count as more consecutive runs
    assert incident(engine, "stream_1")["consecutive_runs"] == 2
    assert incident(engine, "stream_4")["consecutive_runs"] == 1
    with engine.connect() as connection:
        runs = connection.execute(sa.text("SELECT run_id FROM recon.runs ORDER BY run_id")).scalars().all()
    assert runs == ["run-a", "run-b", "run-c"]


def test_rerunning_an_unpartitioned_run_does_not_duplicate(engine: sa.Engine) -> None:
    """Without a partition key, the same run id persisted twice keeps one set of rows;
    another unpartitioned run's rows stay."""
    persist(engine, "run-x", [F("stream_9")], ["stream_9"], partition=None)
    persist(engine, "run-y", [F("stream_1"), F("stream_2")], ["stream_1", "stream_2"], partition=None)
    persist(engine, "run-y", [F("stream_1"), F("stream_2")], ["stream_1", "stream_2"], partition=None)
    rows = discrepancies(engine)
    assert Counter(rows["run_id"]) == {"run-x": 1, "run-y": 2}


def test_exact_values_and_details_are_stored(engine: sa.Engine) -> None:
    """db_value, chain_value and a delta of 2**128 - 1 are stored exactly; details keep
    the entity key and the finding's own details."""
    big = F("stream_5", db_value=str(-(2**127)), chain_value=str(2**127 - 1), delta=2**128 - 1)
    persist(engine, "run-1", [big], ["stream_5"])
    row = discrepancies(engine).iloc[0]
    assert (row["db_value"], row["chain_value"]) == (big.db_value, big.chain_value)
    assert int(row["delta"]) == 2**128 - 1
    assert row["details"] == {"entity_key": "5", "note": "stream_5/total"}
    assert int(incident(engine, "stream_5")["last_delta"]) == 2**128 - 1


# -- recon.runs -----------------------------------------------------------------


def run_row(engine: sa.Engine, run_id: str, domain: str) -> dict[str, Any]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT * FROM recon.runs WHERE run_id = :r AND domain = :d"), {"r": run_id, "d": domain}
        ).mappings().all()
    assert len(rows) == 1
    return dict(rows[0])


def test_runs_row_per_run_and_domain_with_counts_and_status(engine: sa.Engine) -> None:
    """One recon.runs row per (run, domain) with finding counts by class (every class
    present), `partial` when entities went unchecked, else `succeeded`."""
    streams_found = [
        F("stream_1"),
        F("stream_2"),
        F("stream_3", field=WHOLE_ENTITY, drift_class=DriftClass.CHAIN_READ_ERROR, db_value=None,
          chain_value=None, delta=None),
    ]
    s = persist(engine, "run-1", streams_found, ["stream_1", "stream_2"], unchecked=1)
    lending_found = [F("loan_1", domain=LENDING, entity_type="loan", field="borrower",
                       drift_class=DriftClass.INVALID_ADDRESS, delta=None)]
    s2 = persist(engine, "run-1", lending_found, ["loan_1"], domain=LENDING)

    streams_run, lending_run = run_row(engine, "run-1", STREAMS), run_row(engine, "run-1", LENDING)
    assert (streams_run["status"], s.status) == ("partial", "partial")
    assert (lending_run["status"], s2.status) == ("succeeded", "succeeded")
    want = Counter(f.drift_class.value for f in streams_found)
    counts = streams_run["finding_counts"]
    counts = json.loads(counts) if isinstance(counts, str) else counts
    assert set(counts) == {c.value for c in DriftClass}
    assert {k: v for k, v in counts.items() if v} == dict(want)
    assert s.counts == counts
    assert lending_run["finding_counts"]["INVALID_ADDRESS"] == 1
    assert sum(lending_run["finding_counts"].values()) == 1
    assert (streams_run["entities_checked"], streams_run["entities_unchecked"]) == (2, 1)
    assert (lending_run["entities_checked"], lending_run["entities_unchecked"]) == (1, 0)
    for row in (streams_run, lending_run):
        assert row["finished_at"] is not None and row["finished_at"] >= row["started_at"]
        assert row["ledger_sequence"] == 2_000_000 and row["partition_key"] == "2026-01-01"
        assert row["job_name"] == "streams_job"
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM recon.runs")).scalar_one() == 2

    persist(engine, "run-1", streams_found[:1], ["stream_1", "stream_2", "stream_3"])
    again = run_row(engine, "run-1", STREAMS)
    assert again["status"] == "succeeded" and again["finding_counts"]["VALUE_MISMATCH"] == 1
    assert again["finding_counts"]["CHAIN_READ_ERROR"] == 0


def test_an_invalid_finding_is_a_storage_error_and_a_defective_frame_writes_nothing(engine: sa.Engine) -> None:
    """A non-integer delta is one finding's problem: it is stored without its values. An unknown drift
    class is the code's: the persist fails and writes nothing."""
    bad = frame_of(F("stream_1"), F("stream_2"))
    bad["delta"] = pd.Series([1.5, 3], dtype=object)
    persist_domain_run(
        engine, RunInfo("run-bad", "job", None), STREAMS,
        DomainDiff(bad, Checked(checked_of("stream_1", "stream_2")), None, None, empty_plan()),
        started_at=datetime.now(UTC), policy=DEFAULT_POLICY,
    )
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT entity_id, delta::text, details->>'storage_error' FROM "
                                          "recon.discrepancies ORDER BY entity_id")).all()
    assert rows == [("stream_1", None, "delta: delta_is_exact_int"), ("stream_2", "3", None)]

    defective = frame_of(F("stream_3"))
    defective["drift_class"] = pd.Series(["NOT_A_CLASS"], dtype=object)
    with pytest.raises(UnstorableFindingsError, match="drift_class"):
        persist_domain_run(
            engine, RunInfo("run-defective", "job", None), STREAMS,
            DomainDiff(defective, Checked(checked_of("stream_3")), None, None, empty_plan()),
            started_at=datetime.now(UTC), policy=DEFAULT_POLICY,
        )
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM recon.runs WHERE run_id = 'run-defective'")
                                  ).scalar_one() == 0


# -- analyst views ----------------------------------------------------------------


def test_analyst_views_count_open_drift_and_daily_findings(engine: sa.Engine) -> None:
    """`open_drift_by_domain` counts unresolved incidents (open vs confirmed) by domain,
    class and severity; `daily_drift_counts` counts, per partition day, every finding row, the
    distinct findings and the distinct entities."""
    status3 = F("stream_3", field="status", drift_class=DriftClass.STATUS_MISMATCH, severity=Severity.CRITICAL,
                db_value="active", chain_value="completed", delta=None)
    run1 = [F("stream_1"), F("stream_1", field="released"), F("stream_2"), status3]
    run2 = [F("stream_1"), status3,
            F("stream_4", field=WHOLE_ENTITY, drift_class=DriftClass.MISSING_ON_CHAIN, db_value=None,
              chain_value=None, delta=None)]
    lending = [F("loan_1", domain=LENDING, entity_type="loan", field="borrower",
                 drift_class=DriftClass.INVALID_ADDRESS, delta=None)]
    streams_ids = ["stream_1", "stream_2", "stream_3", "stream_4"]
    persist(engine, "run-1", run1, streams_ids, partition="2026-01-01")
    persist(engine, "run-2", run2, streams_ids, partition="2026-01-02")
    persist(engine, "run-3", lending, ["loan_1"], partition="2026-01-02", domain=LENDING)

    with engine.connect() as connection:
        open_rows = connection.execute(
            sa.text("SELECT domain, drift_class, severity, open_incidents, confirmed_incidents"
                    " FROM recon.open_drift_by_domain")
        ).all()
        daily = connection.execute(
            sa.text("SELECT day, domain, drift_class, severity, finding_rows, entities, partition_key"
                    " FROM recon.daily_drift_counts")
        ).all()

    # stream_1/total and stream_3/status seen twice -> confirmed; stream_4 once -> open;
    # stream_1/released and stream_2/total checked in run 2 but not seen -> resolved.
    assert {tuple(r[:3]): (r[3], r[4]) for r in open_rows} == {
        (STREAMS, "VALUE_MISMATCH", "WARN"): (0, 1),
        (STREAMS, "STATUS_MISMATCH", "CRITICAL"): (0, 1),
        (STREAMS, "MISSING_ON_CHAIN", "WARN"): (1, 0),
        (LENDING, "INVALID_ADDRESS", "WARN"): (1, 0),
    }
    assert len(open_rows) == 4

    by_day = [("2026-01-01", run1), ("2026-01-02", run2), ("2026-01-02", lending)]
    want_findings = Counter((day, f.domain, f.drift_class.value, f.severity.value) for day, run in by_day for f in run)
    want_entities: dict[tuple[str, str, str, str], set[str]] = {}
    for day, run in by_day:
        for f in run:
            want_entities.setdefault((day, f.domain, f.drift_class.value, f.severity.value), set()).add(f.entity_id)
    assert {(r[0].isoformat(), *r[1:4]): (r[4], r[5]) for r in daily} == {
        group: (n, len(want_entities[group])) for group, n in want_findings.items()
    }
    assert {r[0].isoformat() for r in daily} == {r[6] for r in daily} == {"2026-01-01", "2026-01-02"}
    assert len(daily) == len(want_findings)


# -- two runs of a domain at once -------------------------------------------------


def _waiting_on_a_lock(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return bool(connection.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )).scalar_one())


def test_two_days_persisting_at_once_take_turns_as_if_one_followed_the_other(engine: sa.Engine) -> None:
    """Two days of a backfill run in parallel: both know stream_1 and stream_2 for the first time,
    day 1 sees stream_1 drifting, day 2 (persisting while day 1's transaction is still open) sees
    stream_2 drifting and stream_1 fine. Without turns, day 2 inserted the same new coverage rows and
    failed on their primary key once day 1 committed, and could not see day 1's incident to resolve it."""
    at_end, release = threading.Event(), threading.Event()
    first_engine = sa.create_engine(engine.url)

    @sa.event.listens_for(first_engine, "before_cursor_execute")
    def hold_before_finishing(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().startswith("-- The findings are persisted"):  # finish_run.sql, the last statement
            at_end.set()
            assert release.wait(30)

    errors: list[BaseException] = []

    def day(target: sa.Engine, run_id: str, found: list[F], partition: str) -> None:
        try:
            persist(target, run_id, found, ["stream_1", "stream_2"], partition=partition)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    first = threading.Thread(target=day, args=(first_engine, "day-1", [F("stream_1")], "2026-01-01"))
    second = threading.Thread(target=day, args=(engine, "day-2", [F("stream_2")], "2026-01-02"))
    first.start()
    try:
        assert at_end.wait(30), "day 1 never reached the end of its transaction"
        second.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(engine):
            assert time.monotonic() < deadline, "day 2 never waited for day 1"
            time.sleep(0.05)
    finally:
        release.set()
        first.join(30)
        if second.ident is not None:  # started
            second.join(30)
        first_engine.dispose()
    assert errors == []
    assert incident(engine, "stream_1")["state"] == "resolved"
    assert incident(engine, "stream_1")["resolved_run_id"] == "day-2"
    assert incident(engine, "stream_2")["state"] == "open"
    with engine.connect() as connection:
        coverage = connection.execute(sa.text(
            "SELECT entity_id, last_run_id FROM recon.entity_coverage ORDER BY entity_id")).tuples().all()
    assert coverage == [("stream_1", "day-2"), ("stream_2", "day-2")]


def test_recording_coverage_widens_work_mem_for_its_own_transaction_only(engine: sa.Engine) -> None:
    """A sweep's coverage hash-joins a million rows; the memory it takes for that must not stay
    with the pooled connection the next run (or an analyst's query) gets."""
    with engine.connect() as connection:
        default = connection.execute(sa.text("SHOW work_mem")).scalar_one()
        connection.rollback()
        with connection.begin():
            record_coverage(connection, STREAMS, "run-1", Checked.of("stream", pd.Series(["stream_1"])),
                            datetime.now(UTC))
            during = connection.execute(sa.text("SHOW work_mem")).scalar_one()
        after = connection.execute(sa.text("SHOW work_mem")).scalar_one()

    assert (default, during, after) == ("4MB", "64MB", "4MB")


def test_coverage_looks_for_new_entities_only_when_some_staged_entity_matched_no_row(engine: sa.Engine) -> None:
    """The insert's anti-join scans the whole table (every domain's entities): a run whose
    entities are all known already skips it, and one with a new entity, or with an entity staged
    twice (compared by one part, missed by another), still runs it."""
    inserts: list[str] = []

    def count_inserts(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "INSERT INTO recon.entity_coverage" in statement:
            inserts.append(statement)

    def record(run_id: str, checked: Checked) -> int:
        inserts.clear()
        with engine.begin() as connection:
            record_coverage(connection, STREAMS, run_id, checked, datetime.now(UTC))
        return len(inserts)

    known = Checked.of("stream", pd.Series(["stream_1", "stream_2"]))
    sa.event.listen(engine, "before_cursor_execute", count_inserts)
    try:
        assert record("run-1", known) == 1
        assert record("run-2", known) == 0
        assert record("run-3", Checked.of("stream", pd.Series(["stream_1", "stream_2", "stream_3"]))) == 1
        twice = replace(Checked.none(), keyed=(KeyedEntities("stream", "stream_", BitMap64([1])),),
                        keyed_unchecked=(KeyedEntities("stream", "stream_", BitMap64([1])),))
        assert record("run-4", twice) == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", count_inserts)
    with engine.connect() as connection:
        coverage = connection.execute(sa.text(
            "SELECT entity_id, last_run_id FROM recon.entity_coverage ORDER BY entity_id")).tuples().all()
    assert coverage == [("stream_1", "run-4"), ("stream_2", "run-3"), ("stream_3", "run-3")]
