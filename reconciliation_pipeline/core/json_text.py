"""JSON text that PostgreSQL's `jsonb` accepts, from whatever a step produced.

Python's `json` writes `NaN` and `Infinity` by default, which are not JSON, and a
pandas frame turns missing values into NaN, NaT or `pd.NA` wherever it can. Every
JSON the pipeline writes goes through `to_json`: missing and non-finite values
become null, integers of any size stay exact (`jsonb` numbers are arbitrary
precision), and `allow_nan=False` makes any NaN that slips past this a loud error
rather than a rolled-back transaction.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

NUL_REPLACEMENT = "\\u0000"
"""What a NUL character becomes in stored text: PostgreSQL's text and jsonb reject it. A lone UTF-16
surrogate, which UTF-8 cannot encode, becomes its escape the same way (`\\ud800`)."""


def plain(value: Any) -> Any:
    """`value` as plain JSON data: dicts, lists, str, int, finite float, bool or None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        # Exact: a Decimal is money or a ratio the caller kept exact on purpose.
        return str(value) if value.is_finite() else None
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.datetime64 | np.timedelta64):
        return None if np.isnat(value) else plain(pd.Timestamp(value) if isinstance(value, np.datetime64)
                                                   else pd.Timedelta(value))
    if isinstance(value, datetime | date | time | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, timedelta | pd.Timedelta):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {storable_text(str(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Series):
        return [plain(v) for v in value]
    return storable_text(str(value))


def storable_text(text: str) -> str:
    """`text` without what PostgreSQL cannot store (NUL, lone surrogates), each written as its escape."""
    if "\x00" in text:
        text = text.replace("\x00", NUL_REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def to_json(value: Any, *, sort_keys: bool = False, indent: int | None = None) -> str:
    """`value` as JSON text: NaN, infinities and missing values are null, integers exact."""
    return json.dumps(plain(value), allow_nan=False, sort_keys=sort_keys, indent=indent)
