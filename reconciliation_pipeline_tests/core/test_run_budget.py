"""Which chain rows a run never requested because its time limit was reached."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reconciliation_pipeline.chain.reader import NOT_READ_TIME_LIMIT
from reconciliation_pipeline.core.run_budget import not_read_mask


def test_only_errors_that_end_with_the_time_limit_reason_are_not_read() -> None:
    errors = [None, np.nan, "RPC error -32603: boom (after 3 attempts)", NOT_READ_TIME_LIMIT,
              f"batch 7: {NOT_READ_TIME_LIMIT}", f"{NOT_READ_TIME_LIMIT} (later)", 5]
    # Labels repeat (frames concatenated without a new index): the mask is positional.
    chain = pd.DataFrame({"read_error": pd.Series(errors, dtype=object, index=[10, 11, 12, 13, 14, 15, 10])})

    mask = not_read_mask(chain)

    assert mask.tolist() == [False, False, False, True, True, False, False]
    assert list(mask.index) == [10, 11, 12, 13, 14, 15, 10] and mask.dtype == bool


def test_a_chain_without_read_errors_has_no_row_not_read() -> None:
    assert not_read_mask(pd.DataFrame({"stream_id": [1, 2]})).tolist() == [False, False]
    assert not_read_mask(pd.DataFrame({"read_error": pd.Series([], dtype=object)})).tolist() == []
