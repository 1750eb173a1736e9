"""Exact amounts: integers in base units, never floats (bool is not an amount either)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def is_exact_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def exact_int_mask(values: pd.Series) -> pd.Series:
    """True where the value is an exact Python int (the invariant models' amount check)."""
    return values.map(is_exact_int).astype(bool)
