"""Odds from liquidity (CONTRACTS.md §3): one function for both sides, exact inputs, float odds."""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from reconciliation_pipeline.defs.markets.rules import odds_findings, pool_odds

I128_MAX = 2**127 - 1
liquidity = st.integers(min_value=0, max_value=I128_MAX)
positive_pools = st.lists(st.tuples(liquidity, liquidity).filter(lambda p: p[0] + p[1] > 0), min_size=1, max_size=40)


def odds_of(pools: list[tuple[int, int]]) -> pd.DataFrame:
    return pool_odds(pd.Series([y for y, _ in pools], dtype=object), pd.Series([n for _, n in pools], dtype=object))


@given(positive_pools)
def test_odds_sum_to_one_for_any_positive_liquidity(pools: list[tuple[int, int]]) -> None:
    odds = odds_of(pools)
    total = odds["yes_odds"] + odds["no_odds"]
    assert ((total - 1.0).abs() <= 2**-52).all()
    assert odds.notna().all().all()
    assert ((odds >= 0) & (odds <= 1)).all().all()


@given(positive_pools)
def test_each_odds_is_the_exact_ratio_correctly_rounded(pools: list[tuple[int, int]]) -> None:
    """Liquidity is never rounded on the way: yes = no / (yes + no) as an exact rational, then one rounding."""
    odds = odds_of(pools)
    for (yes, no), yes_odds, no_odds in zip(pools, odds["yes_odds"], odds["no_odds"], strict=True):
        assert yes_odds == float(Fraction(no, yes + no))
        assert no_odds == float(Fraction(yes, yes + no))


@given(positive_pools, st.integers(min_value=1, max_value=2**40))
def test_scaling_both_sides_keeps_the_odds(pools: list[tuple[int, int]], factor: int) -> None:
    scaled = [(y * factor, n * factor) for y, n in pools]
    pd.testing.assert_frame_equal(odds_of(pools), odds_of(scaled))


def test_more_yes_liquidity_makes_yes_cheaper() -> None:
    odds = odds_of([(6_000_000_000, 4_000_000_000), (5_000_000_000, 5_000_000_000), (1, 0), (0, 1)])
    assert odds["yes_odds"].tolist() == [0.4, 0.5, 0.0, 1.0]
    assert odds["no_odds"].tolist() == [0.6, 0.5, 1.0, 0.0]


def test_odds_are_undefined_for_an_empty_or_broken_pool() -> None:
    odds = pool_odds(pd.Series([0, -5, None, 3], dtype=object), pd.Series([0, 10, 7, True], dtype=object))
    assert odds.isna().all().all()


def _frames(db_pool: tuple[int, int], chain_pool: tuple[int, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    db = pd.DataFrame({"market_id": pd.Series([7], dtype="uint64"), "yes_liquidity": pd.Series([db_pool[0]], dtype=object),
                       "no_liquidity": pd.Series([db_pool[1]], dtype=object)})
    chain = db.assign(yes_liquidity=pd.Series([chain_pool[0]], dtype=object),
                      no_liquidity=pd.Series([chain_pool[1]], dtype=object),
                      read_status="ok", ledger_sequence=5, last_modified_ledger=4)
    return db, chain


@given(liquidity, liquidity, liquidity, liquidity, st.floats(min_value=0.001, max_value=0.5))
def test_an_odds_finding_exactly_when_the_gap_exceeds_the_threshold(
    db_yes: int, db_no: int, chain_yes: int, chain_no: int, threshold: float
) -> None:
    db, chain = _frames((db_yes, db_no), (chain_yes, chain_no))
    found = odds_findings(db, chain, threshold)
    if db_yes + db_no == 0 or chain_yes + chain_no == 0:
        assert found.empty
        return
    gap = abs(chain_no / (chain_yes + chain_no) - db_no / (db_yes + db_no))
    assert len(found) == (1 if gap > threshold else 0)
    if len(found):
        details = found.iloc[0]["details"]
        assert math.isclose(details["yes_odds_gap"], gap)
        assert math.isclose(details["db_odds"]["yes"] + details["db_odds"]["no"], 1.0, abs_tol=2**-52)
        assert found.iloc[0]["field"] == "odds" and found.iloc[0]["delta"] is None
