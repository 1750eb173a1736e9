"""A streaming sweep's compared entities, held by key in a Roaring bitmap: the same set of
keys as the arrays they are built from, whatever their runs, and a size that follows the
runs, not the fleet."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from reconciliation_pipeline.core.results import U64_LIMIT, Checked, KeyedEntities, key_set

u64 = st.integers(min_value=0, max_value=U64_LIMIT - 1)
# Runs of consecutive keys near both ends of the range, and keys anywhere.
clustered = st.lists(st.one_of(u64, st.integers(0, 40), st.integers(U64_LIMIT - 40, U64_LIMIT - 1)), max_size=200)


@given(clustered)
def test_a_key_set_holds_exactly_its_keys(keys: list[int]) -> None:
    distinct = np.unique(np.array(keys, dtype=np.uint64))
    bitmap = key_set(distinct)
    assert list(bitmap) == distinct.tolist()
    assert len(bitmap) == len(distinct)


@given(clustered, st.lists(st.one_of(u64.map(str), st.text(max_size=6), st.integers(0, 40).map(lambda k: f"0{k}")),
                           max_size=30))
def test_ids_among_names_exactly_the_held_entities(keys: list[int], other_ids: list[str]) -> None:
    part = KeyedEntities("stream", "stream_", key_set(np.unique(np.array(keys, dtype=np.uint64))))
    held = {f"stream_{k}" for k in keys}
    candidates = [*(f"stream_{k}" for k in keys[:10]), *(f"stream_{i}" for i in other_ids), *other_ids]
    assert part.ids_among(candidates) == [c for c in candidates if c in held]


def test_a_million_consecutive_keys_are_kilobytes_handed_on() -> None:
    """What the IO manager pickles between steps for a million compared streams with gaps."""
    keys = np.delete(np.arange(1, 1_000_001, dtype=np.uint64), np.arange(0, 1_000_000, 997))
    checked = Checked(Checked.none().entities, keyed=(KeyedEntities("stream", "stream_", key_set(keys)),))
    assert checked.count == len(keys)
    assert len(pickle.dumps(checked, pickle.HIGHEST_PROTOCOL)) < 64 * 1024
    assert len(checked.compared_among([("stream", "stream_1"), ("stream", "stream_2"), ("loan", "stream_3")])) == 1
