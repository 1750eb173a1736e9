"""Every finding a domain can produce round-trips through `recon.discrepancies`: missing values,
NaN, infinities, huge integers and NUL characters included. A finding whose values PostgreSQL
cannot store is kept as a storage error, and the other findings persist beside it."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.drift_store import IncidentPolicy, RunInfo, persist_domain_run
from reconciliation_pipeline.core.finding_rows import STORAGE_ERROR, UNSTORED
from reconciliation_pipeline.core.findings import FINDING_COLUMNS, MONEY_COLUMNS, concat_findings, findings_frame
from reconciliation_pipeline.core.json_text import NUL_REPLACEMENT, to_json
from reconciliation_pipeline.core.repairs import empty_plan
from reconciliation_pipeline.core.results import Checked, DomainDiff
from reconciliation_pipeline.defs.balances.spec import SPEC as BALANCES
from reconciliation_pipeline.defs.lending.spec import SPEC as LENDING
from reconciliation_pipeline.defs.markets.spec import SPEC as MARKETS
from reconciliation_pipeline.defs.streaks.spec import SPEC as STREAKS
from reconciliation_pipeline.defs.streams.spec import SPEC as STREAMS

DOMAIN_ENTITIES = [(spec.domain, entity.entity_type)
                   for spec in (STREAMS, LENDING, MARKETS, BALANCES, STREAKS) for entity in spec.entities]
HUGE = 2**200

missing_values = st.sampled_from([None, math.nan, pd.NA, pd.NaT, np.float64("nan")])
non_finite = st.sampled_from([math.inf, -math.inf, math.nan])
texts = st.text(max_size=12) | st.sampled_from(["a\x00b", "lone \ud800 surrogate"])
json_leaves = (missing_values | non_finite | texts | st.booleans()
               | st.integers(min_value=-HUGE, max_value=HUGE) | st.floats(allow_nan=True, allow_infinity=True))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(texts, inner, max_size=3), max_leaves=8)
exact_or_missing = missing_values | st.integers(min_value=-HUGE, max_value=HUGE)


@st.composite
def finding_values(draw: st.DrawFn) -> dict[str, Any]:
    domain, entity_type = draw(st.sampled_from(DOMAIN_ENTITIES))
    return {
        "domain": domain,
        "entity_type": entity_type,
        "field": draw(st.sampled_from(["*", "total", "status", "balance"])),
        "drift_class": draw(st.sampled_from(list(DriftClass))).value,
        "severity": draw(st.sampled_from(list(Severity))).value,
        "db_value": draw(missing_values | texts | st.integers(min_value=-HUGE, max_value=HUGE)),
        "chain_value": draw(missing_values | texts | non_finite),
        # Unstorable: a non-integral delta or one past NUMERIC(40,0), a ledger past BIGINT, details that
        # are no mapping, a negative amount or one past NUMERIC(40,0).
        "delta": draw(exact_or_missing | st.just(1.5) | st.just(-(10**40))),
        "ledger_sequence": draw(missing_values | st.integers(min_value=0, max_value=2**63 - 1) | st.just(2**70)),
        "details": draw(st.dictionaries(texts, json_values, max_size=4) | st.just("not a mapping")),
        "amount_at_stake": draw(missing_values | st.integers(min_value=0, max_value=HUGE) | st.just(-1)
                                | st.just(10**39)),
    }


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def storable(values: dict[str, Any]) -> bool:
    """The oracle: which findings PostgreSQL can hold as they are."""
    delta, ledger, amount = values["delta"], values["ledger_sequence"], values["amount_at_stake"]
    return (isinstance(values["details"], dict)
            and (_is_missing(delta) or (isinstance(delta, int) and abs(delta) < 10**40))
            and (_is_missing(ledger) or ledger < 2**63)
            and (_is_missing(amount) or 0 <= amount < 10**40))


def _escaped(text: str) -> str:
    return text.replace("\x00", NUL_REPLACEMENT).encode("utf-8", "backslashreplace").decode("utf-8")


def json_oracle(value: Any) -> Any:
    """What a value reads back as from jsonb: missing and non-finite are null, NUL escaped, ints exact."""
    if _is_missing(value) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, str):
        return _escaped(value)
    if isinstance(value, dict):
        return {_escaped(k): json_oracle(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_oracle(v) for v in value]
    return value


def text_oracle(value: Any) -> str | None:
    if _is_missing(value):
        return None
    return _escaped(str(value))


def findings_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    parts = []
    for position, values in enumerate(rows):
        frame = findings_frame(
            domain=values["domain"], entity_type=values["entity_type"],
            entity_id=pd.Series([f"e{position}"], dtype=object), entity_key=pd.Series([position], dtype=object),
            field=values["field"], drift_class=pd.Series([values["drift_class"]], dtype=object),
            severity=pd.Series([values["severity"]], dtype=object),
            db_value=pd.Series([values["db_value"]], dtype=object),
            chain_value=pd.Series([values["chain_value"]], dtype=object),
            delta=pd.Series([values["delta"]], dtype=object),
            ledger_sequence=pd.Series([values["ledger_sequence"]], dtype=object),
            details=pd.Series([values["details"]], dtype=object),
        )
        if not _is_missing(values["amount_at_stake"]):
            frame[list(MONEY_COLUMNS)] = pd.DataFrame(
                [["USDC", None, "C" + "A" * 55, 7, values["amount_at_stake"]]], columns=list(MONEY_COLUMNS), dtype=object)
        parts.append(frame)
    findings = concat_findings(parts)
    # The frame as a domain hands it over: missing values as pandas left them, not normalised to None.
    for column in ("db_value", "chain_value", "delta", "ledger_sequence", "amount_at_stake"):
        findings[column] = pd.Series([r[column] for r in rows], dtype=object)
    return findings[list(FINDING_COLUMNS)]


def persist(engine: sa.Engine, findings: pd.DataFrame) -> str:
    run_id = f"storage-{uuid.uuid4().hex[:12]}"
    diff = DomainDiff(findings, Checked.none(), 100, datetime.now(UTC), empty_plan())
    persist_domain_run(engine, RunInfo(run_id, "test", None), "streams", diff, started_at=datetime.now(UTC),
                       policy=IncidentPolicy())
    return run_id


def stored(engine: sa.Engine, run_id: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT entity_id, drift_class, severity, db_value, chain_value, delta::text AS delta, ledger_sequence,"
            " details, amount_at_stake::text AS amount FROM recon.discrepancies WHERE run_id = :r"),
            {"r": run_id}).mappings().all()
    return {r["entity_id"]: dict(r) for r in rows}


def _numeric_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_numeric_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_numeric_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float | Decimal):
        return Decimal(repr(a)) == Decimal(repr(b)) if isinstance(a, float) else Decimal(a) == Decimal(str(b))
    return a == b


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(rows=st.lists(finding_values(), min_size=1, max_size=6))
def test_every_finding_round_trips_or_is_kept_as_a_storage_error(engine: sa.Engine,
                                                                 rows: list[dict[str, Any]]) -> None:
    back = stored(engine, persist(engine, findings_of(rows)))
    assert len(back) == len(rows)  # nothing lost, nothing twice
    for position, values in enumerate(rows):
        row = back[f"e{position}"]
        assert (row["drift_class"], row["severity"]) == (values["drift_class"], values["severity"])
        if not storable(values):
            assert STORAGE_ERROR in row["details"] and isinstance(row["details"][UNSTORED], dict)
            assert (row["delta"], row["ledger_sequence"], row["amount"]) == (None, None, None)
            continue
        assert STORAGE_ERROR not in row["details"] or STORAGE_ERROR in values["details"]
        assert row["db_value"] == text_oracle(values["db_value"])
        assert row["chain_value"] == text_oracle(values["chain_value"])
        assert row["delta"] == (None if _is_missing(values["delta"]) else str(values["delta"]))
        assert row["ledger_sequence"] == (None if _is_missing(values["ledger_sequence"]) else values["ledger_sequence"])
        assert row["amount"] == (None if _is_missing(values["amount_at_stake"]) else str(values["amount_at_stake"]))
        assert _numeric_equal(row["details"], json_oracle({"entity_key": position, **values["details"]}))


def test_unstorable_values_are_kept_as_storage_errors_beside_the_clean_findings(engine: sa.Engine) -> None:
    rows = [{"domain": "streams", "entity_type": "stream", "field": "total", "drift_class": "VALUE_MISMATCH",
             "severity": "WARN", "db_value": str(i), "chain_value": "0", "delta": i, "ledger_sequence": 7,
             "details": {"n": i}, "amount_at_stake": i} for i in range(5)]
    findings = findings_of(rows)
    findings.loc[2, "asset_code"] = "bad\x00code"
    findings.loc[3, "asset_decimals"] = 40_000
    back = stored(engine, persist(engine, findings))
    assert sorted(back) == [f"e{i}" for i in range(5)]
    assert back["e3"]["details"][STORAGE_ERROR].startswith("asset_decimals 40000 is outside")
    assert back["e3"]["details"][UNSTORED]["asset_decimals"] == "40000"
    for clean in ("e0", "e1", "e4"):
        assert back[clean]["details"] == {"entity_key": int(clean[1:]), "n": int(clean[1:])}
        assert back[clean]["amount"] == clean[1:]
    assert back["e2"]["amount"] == "2"  # the NUL escaped, the finding stored as it is


def test_a_value_only_postgres_refuses_is_isolated_by_bisection(engine: sa.Engine) -> None:
    """NUMERIC(40,0) holds the difference of two i128; a larger delta is refused by PostgreSQL alone.
    That finding becomes a storage error (incidents follow it by identity); the other eight are stored."""
    rows = [{"domain": "streams", "entity_type": "stream", "field": "total", "drift_class": "VALUE_MISMATCH",
             "severity": "CRITICAL", "db_value": "1", "chain_value": "2", "delta": 10**45 if i == 6 else i,
             "ledger_sequence": 1, "details": {}, "amount_at_stake": None} for i in range(9)]
    run_id = persist(engine, findings_of(rows))
    back = stored(engine, run_id)
    assert sorted(back) == [f"e{i}" for i in range(9)]
    assert "PostgreSQL refused the finding: numeric field overflow" in back["e6"]["details"][STORAGE_ERROR]
    assert back["e6"]["details"][UNSTORED]["delta"] == str(10**45)
    assert [back[f"e{i}"]["delta"] for i in range(9) if i != 6] == [str(i) for i in range(9) if i != 6]
    with engine.connect() as connection:
        incidents = connection.execute(sa.text("SELECT count(*) FROM recon.drift_incidents WHERE last_run_id = :r"),
                                       {"r": run_id}).scalar_one()
    assert incidents == 9


def test_json_text_is_valid_json_for_every_pandas_missing_value() -> None:
    text = to_json({"nan": math.nan, "inf": math.inf, "na": pd.NA, "nat": pd.NaT, "np": np.float32("nan"),
                    "npnat": np.datetime64("NaT"), "big": 2**130, "dec": Decimal("1.10"), "when": datetime(2026, 1, 2),
                    "bytes": b"\x00\x01", "nul": "a\x00"})
    assert text == ('{"nan": null, "inf": null, "na": null, "nat": null, "np": null, "npnat": null, '
                    f'"big": {2**130}, "dec": "1.10", "when": "2026-01-02T00:00:00", "bytes": "AAE=", '
                    '"nul": "a\\\\u0000"}')
