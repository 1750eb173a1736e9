"""Stellar address validation, vectorised over a column of addresses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reconciliation_pipeline.chain import strkey


def is_valid_address(value: object) -> bool:
    """A G... account or C... contract address with a valid checksum."""
    return strkey.is_account(value) or strkey.is_contract(value)


def valid_address_mask(addresses: pd.Series, *, allow_muxed: bool = False) -> pd.Series:
    """True where the address is valid (with `allow_muxed`, an M... muxed account too). Each
    distinct value is checked once."""
    # Missing values (None, NaN) get code -1: the False appended after the distinct values' verdicts.
    codes, uniques = pd.factorize(addresses.astype(object))
    valid = strkey.valid_addresses(list(uniques))
    if allow_muxed:
        valid |= np.fromiter((strkey.muxed_account_base(value) is not None for value in uniques), dtype=bool,
                             count=len(uniques))
    return pd.Series(np.append(valid, False)[codes], index=addresses.index)
