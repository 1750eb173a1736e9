"""Properties of the vectorised diff, checked against a plain per-row oracle, and
exact i128 amounts from PostgreSQL through the diff into `recon.discrepancies`."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from recon_demo.identities import account_id, contract_id
from reconciliation_pipeline.core.diff import diff_snapshots, invariant_findings
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from reconciliation_pipeline.core.drift_store import IncidentPolicy, RunInfo, persist_domain_run
from reconciliation_pipeline.core.findings import FindingsModel, with_domain
from reconciliation_pipeline.core.repairs import empty_plan
from reconciliation_pipeline.core.results import Checked, DomainDiff
from reconciliation_pipeline.core.scopes import RowFilter
from reconciliation_pipeline.core.snapshots import CHAIN_META_COLUMNS, snapshot_db
from reconciliation_pipeline.core.spec import Comparison
from reconciliation_pipeline.defs.streams.spec import CANONICAL_STATUSES, STREAM, STREAMS_SOURCE, StreamEscrowInvariants

SPEC = STREAM
STREAM_FIELDS = SPEC.layout.columns  # sender, recipient, token, total, released, status
I128_MIN, I128_MAX = -(2**127), 2**127 - 1
U64_MAX = 2**64 - 1
ADDRESSES = [account_id("alice"), account_id("bob"), contract_id("token-a"), contract_id("token-b")]
DB_COLUMNS = ["stream_id", *STREAM_FIELDS]
CHAIN_COLUMNS = ["stream_id", *STREAM_FIELDS, *CHAIN_META_COLUMNS]
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)

i128 = st.one_of(
    st.sampled_from([I128_MIN, I128_MIN + 1, I128_MAX, I128_MAX - 1, 0, 1, -1]),
    st.integers(min_value=I128_MIN, max_value=I128_MAX),
)
stream_values = st.fixed_dictionaries(
    {
        "sender": st.sampled_from(ADDRESSES),
        "recipient": st.sampled_from(ADDRESSES),
        "token": st.sampled_from(ADDRESSES),
        "total": i128,
        "released": i128,
        "status": st.sampled_from(CANONICAL_STATUSES),
    }
)


def persist(engine: sa.Engine, run: RunInfo, findings: pd.DataFrame, *, ledger_sequence: int,
            db_snapshot_at: datetime | None) -> None:
    diff = DomainDiff(with_domain(findings, "streams"), Checked.none(), ledger_sequence, db_snapshot_at, empty_plan())
    persist_domain_run(engine, run, "streams", diff, started_at=datetime.now(UTC), policy=IncidentPolicy())


def db_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A database snapshot as `snapshot_db` produces it: uint64 keys, exact ints, object columns."""
    frame = pd.DataFrame(rows, columns=DB_COLUMNS, dtype=object)
    frame["stream_id"] = SPEC.kind.normalize(frame["stream_id"])
    return frame


def chain_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A chain snapshot as `snapshot_chain` produces it: layout columns plus read metadata."""
    frame = pd.DataFrame(rows, columns=CHAIN_COLUMNS, dtype=object)
    frame = frame.astype(object).where(frame.notna(), None)
    frame["stream_id"] = SPEC.kind.normalize(frame["stream_id"])
    return frame


def chain_row(stream_id: int, status: str, values: dict[str, Any] | None, ledger_sequence: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "stream_id": stream_id,
        "read_status": status,
        "ledger_key": f"key-{stream_id}",
        "ledger_sequence": ledger_sequence,
    }
    if status == "ok":
        assert values is not None
        row.update(values, last_modified_ledger=ledger_sequence - 3, raw_xdr=f"xdr-{stream_id}")
    elif status == "error":
        row.update(read_error=f"read failed: boom {stream_id}")
    return row


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random db and chain snapshots whose key sets overlap partially."""
    keys = draw(
        st.lists(
            st.one_of(st.sampled_from([0, 1, U64_MAX, U64_MAX - 1, 2**53 + 1]), st.integers(0, U64_MAX)),
            unique=True,
            max_size=14,
        )
    )
    db_rows, chain_rows = [], []
    for key in keys:
        side = draw(st.sampled_from(["db", "chain", "both", "both", "both"]))
        values = draw(stream_values)
        if side in ("db", "both"):
            db_rows.append({"stream_id": key, **values})
        if side in ("chain", "both"):
            status = draw(st.sampled_from(["ok", "ok", "ok", "missing", "error"]))
            chain_values = None
            if status == "ok":
                other = draw(stream_values)
                # per field: keep the database value, or take a fresh one
                keep = draw(st.lists(st.booleans(), min_size=len(STREAM_FIELDS), max_size=len(STREAM_FIELDS)))
                chain_values = {f: values[f] if k else other[f] for f, k in zip(STREAM_FIELDS, keep, strict=True)}
            chain_rows.append(chain_row(key, status, chain_values, draw(st.integers(1, 2**31 - 1))))
    draw(st.randoms()).shuffle(chain_rows)
    return db_frame(db_rows), chain_frame(chain_rows)


def oracle(db: pd.DataFrame, chain: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The findings decided one row at a time, the slow obvious way."""
    db_rows = {int(r["stream_id"]): r for r in db.to_dict("records")}
    chain_rows = {int(r["stream_id"]): r for r in chain.to_dict("records")}
    out: list[tuple[Any, ...]] = []

    def add(key: int, field: str, drift: DriftClass, severity: Severity, db_value: Any = None,
            chain_value: Any = None, delta: Any = None, ledger: Any = None, details: dict[str, Any] | None = None) -> None:
        out.append((f"stream_{key}", str(key), field, drift.value, severity.value, db_value, chain_value, delta,
                    ledger, tuple(sorted((details or {}).items()))))

    for key in sorted(set(db_rows) | set(chain_rows)):
        d, c = db_rows.get(key), chain_rows.get(key)
        status = c["read_status"] if c is not None else None
        if status == "error":
            add(key, WHOLE_ENTITY, DriftClass.CHAIN_READ_ERROR, SPEC.read_error_severity, ledger=c["ledger_sequence"],
                details={"error": c["read_error"], "ledger_key": c["ledger_key"]})
        elif d is not None and c is None:
            add(key, WHOLE_ENTITY, DriftClass.MISSING_ON_CHAIN, SPEC.missing_severity)
        elif d is not None and status == "missing":
            add(key, WHOLE_ENTITY, DriftClass.MISSING_ON_CHAIN, SPEC.missing_severity, ledger=c["ledger_sequence"],
                details={"ledger_key": c["ledger_key"]})
        elif d is None and status == "ok":
            add(key, WHOLE_ENTITY, DriftClass.MISSING_IN_DB, SPEC.missing_severity, ledger=c["ledger_sequence"],
                details={"ledger_key": c["ledger_key"], "last_modified_ledger": c["last_modified_ledger"]})
        elif d is not None and status == "ok":
            for compared in SPEC.compared:
                a, b = d[compared.name], c[compared.name]
                if compared.comparison is Comparison.AMOUNT:
                    delta = b - a
                    if abs(delta) > compared.tolerance:
                        add(key, compared.name, compared.drift_class, compared.severity, str(a), str(b), delta,
                            c["ledger_sequence"], {"last_modified_ledger": c["last_modified_ledger"]})
                elif a != b:
                    add(key, compared.name, compared.drift_class, compared.severity, str(a), str(b), None,
                        c["ledger_sequence"], {"last_modified_ledger": c["last_modified_ledger"]})
    return out


def as_tuples(findings: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [
        (r["entity_id"], r["entity_key"], r["field"], r["drift_class"], r["severity"], r["db_value"],
         r["chain_value"], r["delta"], r["ledger_sequence"], tuple(sorted(r["details"].items())))
        for r in findings.to_dict("records")
    ]


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    # no "explain" phase: on a failure it re-runs the diff hundreds of times
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
@given(frames())
def test_diff_equals_per_row_oracle(pair: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """For random partially overlapping snapshots with full-range i128 amounts,
    the vectorised diff finds exactly what a per-row loop finds (deltas exact ints)."""
    db, chain = pair
    findings = diff_snapshots(SPEC, db, chain)
    FindingsModel.validate(findings, lazy=True)
    assert Counter(as_tuples(findings)) == Counter(oracle(db, chain))
    for delta in findings["delta"]:
        assert delta is None or type(delta) is int


def test_oracle_sees_every_class_on_a_fixed_example() -> None:
    """A hand-made pair that produces every class the diff can emit (the database row
    with no chain row has its own test below), so the property test's oracle is known
    to exercise each branch, with a delta of 2**128 - 1."""
    a, b, t = ADDRESSES[0], ADDRESSES[1], ADDRESSES[2]
    base = {"sender": a, "recipient": b, "token": t, "total": 10, "released": 5, "status": "active"}
    db = db_frame(
        [
            {"stream_id": 1, **base},
            {"stream_id": 2, **base},
            {"stream_id": 5, **base, "total": I128_MIN},
            {"stream_id": U64_MAX, **base},
        ]
    )
    chain = chain_frame(
        [
            chain_row(1, "missing", None, 100),
            chain_row(2, "error", None, 100),
            chain_row(4, "ok", base, 100),
            chain_row(5, "ok", {**base, "total": I128_MAX, "status": "paused", "recipient": a}, 100),
            chain_row(U64_MAX, "ok", base, 100),
        ]
    )
    findings = diff_snapshots(SPEC, db, chain)
    assert Counter(as_tuples(findings)) == Counter(oracle(db, chain))
    got = {(r["entity_id"], r["field"], r["drift_class"]) for r in findings.to_dict("records")}
    assert got == {
        ("stream_1", WHOLE_ENTITY, "MISSING_ON_CHAIN"),
        ("stream_2", WHOLE_ENTITY, "CHAIN_READ_ERROR"),
        ("stream_4", WHOLE_ENTITY, "MISSING_IN_DB"),
        ("stream_5", "total", "VALUE_MISMATCH"),
        ("stream_5", "status", "STATUS_MISMATCH"),
        ("stream_5", "recipient", "VALUE_MISMATCH"),
    }
    total = findings[findings["field"] == "total"].iloc[0]
    assert total["delta"] == 2**128 - 1 and total["db_value"] == str(I128_MIN) and total["chain_value"] == str(I128_MAX)


def test_database_row_without_chain_row_persists_as_missing_on_chain(engine: sa.Engine) -> None:
    """A database row the chain snapshot has no row for is MISSING_ON_CHAIN with
    clean details (no NaN), and the finding can be written to recon.discrepancies."""
    values = {"sender": ADDRESSES[0], "recipient": ADDRESSES[1], "token": ADDRESSES[2],
              "total": 5, "released": 1, "status": "active"}
    db = db_frame([{"stream_id": 1, **values}, {"stream_id": 2, **values}])
    chain = chain_frame([chain_row(1, "ok", values, 77)])
    findings = diff_snapshots(SPEC, db, chain)
    assert [(r["entity_id"], r["drift_class"]) for r in findings.to_dict("records")] == [("stream_2", "MISSING_ON_CHAIN")]
    run = RunInfo(run_id=f"no-chain-row-{uuid.uuid4().hex}", job_name="test", partition_key=None)
    persist(engine, run, findings, ledger_sequence=77, db_snapshot_at=None)
    with engine.connect() as connection:
        stored = connection.execute(
            sa.text("SELECT entity_id, drift_class FROM recon.discrepancies WHERE run_id = :r"), {"r": run.run_id}
        ).all()
    assert [tuple(r) for r in stored] == [("stream_2", "MISSING_ON_CHAIN")]
    assert findings.iloc[0]["details"] == {}


def test_invalid_database_address_is_invalid_address_not_value_mismatch() -> None:
    """An invalid sender in the database is one INVALID_ADDRESS finding for `sender`,
    and no VALUE_MISMATCH for that field even though the chain holds another value;
    a real mismatch on another field of the same row is still reported."""
    good = {"sender": ADDRESSES[0], "recipient": ADDRESSES[1], "token": ADDRESSES[2],
            "total": 100, "released": 40, "status": "active"}
    bad_sender = "GNOTAVALIDADDRESS"
    db = db_frame([{"stream_id": 7, **good, "sender": bad_sender, "total": 99}, {"stream_id": 8, **good}])
    chain = chain_frame([chain_row(7, "ok", good, 50), chain_row(8, "ok", good, 50)])
    findings = diff_snapshots(SPEC, db, chain)
    rows = {(r["entity_id"], r["field"], r["drift_class"]): r for r in findings.to_dict("records")}
    assert set(rows) == {("stream_7", "sender", "INVALID_ADDRESS"), ("stream_7", "total", "VALUE_MISMATCH")}
    assert rows[("stream_7", "sender", "INVALID_ADDRESS")]["db_value"] == bad_sender
    assert rows[("stream_7", "total", "VALUE_MISMATCH")]["delta"] == 1


# -- invariants ---------------------------------------------------------------


def invariant_rows(*amounts: tuple[int, int], status: str = "active") -> pd.DataFrame:
    rows = [
        {"stream_id": i + 1, "sender": ADDRESSES[0], "recipient": ADDRESSES[1], "token": ADDRESSES[2],
         "total": total, "released": released, "status": status}
        for i, (total, released) in enumerate(amounts)
    ]
    return db_frame(rows)


def test_released_above_total_is_one_finding_naming_both_values() -> None:
    """released > total: exactly one `released_le_total` finding; its db_value holds both exact values."""
    total, released = I128_MAX - 1, I128_MAX
    frame = invariant_rows((10, 5), (total, released))
    found = invariant_findings(SPEC, "stream_id", StreamEscrowInvariants, frame, side="database", severity=Severity.WARN)
    assert len(found) == 1
    finding = found.iloc[0]
    assert finding["field"] == "released_le_total"
    assert finding["drift_class"] == "INVARIANT_VIOLATION" and finding["severity"] == "WARN"
    assert finding["entity_id"] == "stream_2"
    assert f"released={released}" in finding["db_value"] and f"total={total}" in finding["db_value"]
    assert finding["chain_value"] is None


@pytest.mark.parametrize("column", ["total", "released"])
def test_negative_amount_is_a_finding_on_that_column(column: str) -> None:
    """A negative amount gives an INVARIANT_VIOLATION on that column (chain side: chain_value)."""
    amounts = {"total": (-1, -1), "released": (10, -5)}[column]
    frame = invariant_rows((10, 5), amounts)
    found = invariant_findings(SPEC, "stream_id", StreamEscrowInvariants, frame, side="chain", severity=Severity.CRITICAL)
    on_column = found[found["field"] == column]
    assert len(on_column) == 1
    finding = on_column.iloc[0]
    assert finding["entity_id"] == "stream_2" and finding["severity"] == "CRITICAL"
    assert finding["chain_value"] == str(dict(zip(("total", "released"), amounts))[column])
    assert finding["db_value"] is None
    assert set(found["entity_id"]) == {"stream_2"}
    assert "released_le_total" not in set(found["field"])


def test_clean_rows_give_no_invariant_findings() -> None:
    """Non-negative amounts with released <= total (up to the i128 maximum) and a canonical status: nothing."""
    for status in CANONICAL_STATUSES:
        frame = invariant_rows((0, 0), (10, 10), (I128_MAX, I128_MAX - 1), (I128_MAX, 0), status=status)
        found = invariant_findings(SPEC, "stream_id", StreamEscrowInvariants, frame, side="database", severity=Severity.WARN)
        assert found.empty


# -- exact i128 through PostgreSQL --------------------------------------------

INSERT_STREAM = sa.text(
    "INSERT INTO streams (id, sender_address, recipient_address, token_address, total_amount, released_amount, status)"
    " VALUES (:id, :sender, :recipient, :token, :total, :released, :status)"
)
CLEAR = sa.text("DELETE FROM streams")  # recon rows are told apart by run id
READ_BACK = sa.text(
    "SELECT entity_id, field, db_value, chain_value, delta FROM recon.discrepancies"
    " WHERE run_id = :run_id AND drift_class = 'VALUE_MISMATCH'"
)

amount_pairs = st.lists(st.tuples(i128, i128, i128, i128), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount_pairs)
@example([(I128_MIN, I128_MAX, I128_MAX, I128_MIN)])
@example([(I128_MAX, I128_MIN, I128_MIN + 1, I128_MAX - 1), (0, -1, I128_MAX, 1)])
def test_i128_extremes_round_trip_through_postgres(engine: sa.Engine, amounts: list[tuple[int, int, int, int]]) -> None:
    """(db total, db released, chain total, chain released) per stream: PostgreSQL
    NUMERIC -> snapshot -> diff -> recon.discrepancies keeps db_value, chain_value
    and delta (up to 2**128 - 1 in magnitude) as the exact integers."""
    with engine.begin() as connection:
        connection.execute(CLEAR)
        connection.execute(
            INSERT_STREAM,
            [
                {"id": i + 1, "sender": ADDRESSES[0], "recipient": ADDRESSES[1], "token": ADDRESSES[2],
                 "total": total, "released": released, "status": "Active"}
                for i, (total, released, _, _) in enumerate(amounts)
            ],
        )
    snapshot = snapshot_db(engine, STREAMS_SOURCE, RowFilter(window_end=FAR_FUTURE))
    db = snapshot.frame
    assert [(r["total"], r["released"]) for r in db.to_dict("records")] == [(t, r) for t, r, _, _ in amounts]
    assert all(type(v) is int for v in [*db["total"], *db["released"]])

    chain = chain_frame(
        [
            chain_row(i + 1, "ok", {"sender": ADDRESSES[0], "recipient": ADDRESSES[1], "token": ADDRESSES[2],
                                    "total": chain_total, "released": chain_released, "status": "active"}, 2_000_000)
            for i, (_, _, chain_total, chain_released) in enumerate(amounts)
        ]
    )
    findings = diff_snapshots(SPEC, db, chain)
    run = RunInfo(run_id=f"roundtrip-{uuid.uuid4().hex}", job_name="test", partition_key=None)
    persist(engine, run, findings, ledger_sequence=2_000_000, db_snapshot_at=snapshot.taken_at)
    with engine.connect() as connection:
        stored = connection.execute(READ_BACK, {"run_id": run.run_id}).all()

    expected = set()
    for i, (db_total, db_released, chain_total, chain_released) in enumerate(amounts):
        for field, a, b in (("total", db_total, chain_total), ("released", db_released, chain_released)):
            if a != b:
                expected.add((f"stream_{i + 1}", field, str(a), str(b), b - a))
    got = {(e, f, dv, cv, int(d)) for e, f, dv, cv, d in stored}
    assert len(stored) == len(expected)
    assert got == expected
    assert all(d == int(d) for *_, d in stored)
