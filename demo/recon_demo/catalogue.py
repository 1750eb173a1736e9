"""The vocabulary of injected drift: what each world breaks and what the pipeline must report.

Every domain's world writes each injected drift down once, as an `InjectedDrift`
with the `ExpectedFinding`s it must produce; the tests and the demo compare
the persisted findings against these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import pandas as pd


@dataclass(frozen=True)
class ExpectedFinding:
    entity_type: str
    entity_id: str
    field: str
    drift_class: str
    severity: str
    db_value: str | None
    chain_value: str | None
    origin_tx_hash: str | None = None
    """The transaction that wrote the chain value, when the world knows it (the finding must name it)."""


@dataclass(frozen=True)
class InjectedDrift:
    name: str
    description: str
    expected: tuple[ExpectedFinding, ...]


EXPECTED_COLUMNS = [f.name for f in fields(ExpectedFinding)]


def expected_findings(catalogue: Iterable[InjectedDrift]) -> pd.DataFrame:
    """Every finding a catalogue expects, one row each."""
    rows = [vars(e) for drift in catalogue for e in drift.expected]
    return pd.DataFrame(rows, columns=EXPECTED_COLUMNS)
