"""Stellar address validation, vectorised over a column of addresses."""

from __future__ import annotations

import pandas as pd

from reconciliation_pipeline.chain import strkey


def is_valid_address(value: object) -> bool:
    """A G... account or C... contract address with a valid checksum."""
    return strkey.is_account(value) or strkey.is_contract(value)


def valid_address_mask(addresses: pd.Series, *, allow_muxed: bool = False) -> pd.Series:
    """True where the address is valid (with `allow_muxed`, an M... muxed account too). Each
    distinct value is checked once."""
    uniques = pd.unique(addresses.astype(object))
    verdicts = {value: is_valid_address(value) or (allow_muxed and strkey.muxed_account_base(value) is not None)
                for value in uniques}
    return addresses.astype(object).map(verdicts).astype(bool)
