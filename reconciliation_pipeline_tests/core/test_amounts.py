"""Exact amounts: the per-value check and the vectorised mask agree on every kind of value."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from reconciliation_pipeline.core.amounts import exact_int_mask, is_exact_int

VALUES = st.one_of(
    st.integers(min_value=-(2**130), max_value=2**130),
    st.booleans(),
    st.floats(allow_nan=True),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.none(),
    st.text(max_size=3),
    st.integers(min_value=-(2**62), max_value=2**62).map(np.int64),
)


@given(values=st.lists(VALUES, max_size=40))
def test_the_mask_equals_the_per_value_check(values: list[object]) -> None:
    series = pd.Series(values, dtype=object)
    assert exact_int_mask(series).tolist() == [is_exact_int(v) for v in values]


def test_only_plain_ints_are_amounts() -> None:
    assert [is_exact_int(v) for v in (5, 2**127, True, 5.0, Decimal(5), np.int64(5), "5", None)] == [
        True, True, False, False, False, False, False, False]
    assert exact_int_mask(pd.Series([], dtype=object)).tolist() == []
