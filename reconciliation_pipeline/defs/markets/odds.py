"""Odds from pool liquidity (CONTRACTS.md §3), the one function both sides use.

Constant-product pricing: the YES price is the NO side's share of the pool and
the other way round, so the two odds sum to 1. Liquidity stays exact (Python
ints, any i128); only the odds are floats: each is the exact ratio correctly
rounded (Python's int / int), so their sum is 1 within one rounding step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reconciliation_pipeline.core.amounts import is_exact_int


def _non_negative_ints(values: pd.Series) -> pd.Series:
    return values.map(lambda v: is_exact_int(v) and v >= 0).astype(bool)


def pool_odds(yes_liquidity: pd.Series, no_liquidity: pd.Series) -> pd.DataFrame:
    """`yes_odds = no / (yes + no)`, `no_odds = yes / (yes + no)`, aligned with the inputs.

    Odds are NaN where they are undefined: a missing or negative side, or an
    empty pool (both sides zero).
    """
    yes = yes_liquidity.astype(object)
    no = no_liquidity.astype(object)
    usable = _non_negative_ints(yes) & _non_negative_ints(no)
    pool_size = (yes[usable] + no[usable]).astype(object)
    pool_size = pool_size[(pool_size > 0).astype(bool)]
    priced = pool_size.index
    # int / int is exact-then-rounded-once in Python: liquidity stays exact, only the odds are floats.
    yes_ratio, no_ratio = no[priced] / pool_size, yes[priced] / pool_size
    odds = pd.DataFrame({"yes_odds": np.nan, "no_odds": np.nan}, index=yes.index, dtype=float)
    odds.loc[priced, "yes_odds"] = yes_ratio.astype(float)
    odds.loc[priced, "no_odds"] = no_ratio.astype(float)
    return odds
