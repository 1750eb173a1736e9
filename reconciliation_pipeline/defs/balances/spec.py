"""The USDC balances reconciliation as data: CONTRACTS.md §6 against `users.usdc_balance`.

A G... holder's balance is its classic USDC trustline; a C... holder's is its
`Balance(Address)` entry on the USDC Stellar Asset Contract. One decoder reads
either entry. The database side covers users with a wallet only.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.chain.decode import DecodeError
from reconciliation_pipeline.chain.layouts import SAC_BALANCE
from reconciliation_pipeline.core.amounts import exact_int_mask
from reconciliation_pipeline.core.spec import (
    Authority,
    ComparedField,
    Comparison,
    ContractDataLayout,
    KeyKind,
    ReconSpec,
)

DOMAIN = "balances"
BALANCE_FIELD = "usdc_balance"
WALLET_FIELD = "wallet_address"
TRUSTLINE_FIELD = "trustline"
"""The `field` of a G... holder's missing trustline: no trustline is no USDC, never a 0 balance."""
DEFAULT_TOLERANCE = 10


def _entry_type(entry_data_b64: str) -> int:
    try:
        head = base64.b64decode(entry_data_b64[:8], validate=True)
    except ValueError as exc:
        raise DecodeError(f"not LedgerEntryData XDR: {exc}") from exc
    if len(head) < 4:
        raise DecodeError("not LedgerEntryData XDR: too short")
    return int.from_bytes(head[:4], "big")


def decode_usdc_holding(entry_data_b64: str) -> dict[str, Any]:
    """A USDC trustline (`balance`, int64) or a SAC balance entry (`amount`, i128) → the balance.

    Both take the byte-level path (`layouts.SAC_BALANCE`, `fastxdr.trustline_balance`),
    checked against the SDK's XDR classes by property tests.
    """
    entry_type = _entry_type(entry_data_b64)
    if entry_type == fastxdr.CONTRACT_DATA:
        return {BALANCE_FIELD: SAC_BALANCE.decode(entry_data_b64)["amount"]}
    if entry_type != fastxdr.TRUSTLINE:
        raise DecodeError(f"expected a TRUSTLINE or CONTRACT_DATA entry, got ledger entry type {entry_type}")
    try:
        return {BALANCE_FIELD: fastxdr.trustline_balance(entry_data_b64)}
    except fastxdr.XdrError as exc:
        raise DecodeError(str(exc)) from exc


class BalanceInvariants(pa.DataFrameModel):
    """A USDC balance is a non-negative exact integer in base units."""

    usdc_balance: Series[object] = pa.Field(ge=0)

    @pa.check("usdc_balance", name="exact_integer_amount")
    def exact_integer_amount(cls, values: pd.Series) -> pd.Series:
        return exact_int_mask(values)

    class Config:
        strict = False


def balances_spec(tolerance: int = DEFAULT_TOLERANCE) -> ReconSpec:
    """The spec with the configured mismatch tolerance (base units)."""
    return dataclasses.replace(
        BALANCES_SPEC, compared=(ComparedField(BALANCE_FIELD, Comparison.AMOUNT, tolerance=tolerance),)
    )


BALANCES_SPEC = ReconSpec(
    domain=DOMAIN,
    entity_type="user",
    entity_id_prefix="user_",
    key_column="user_id",
    snapshot_query="snapshots/balances/db_usdc_balances.sql",
    layout=ContractDataLayout(
        key_variant="Balance", key_kind=KeyKind.U64, decode=decode_usdc_holding, columns=(BALANCE_FIELD,)
    ),
    compared=(ComparedField(BALANCE_FIELD, Comparison.AMOUNT, tolerance=DEFAULT_TOLERANCE),),
    authority=Authority.CHAIN,
    amount_columns=(BALANCE_FIELD,),
    address_columns=(WALLET_FIELD,),
    db_invariants=BalanceInvariants,
    chain_invariants=BalanceInvariants,
)
"""Entities are users keyed by id (`KeyKind.U64` gives the key its canonical dtype). Their
ledger keys depend on the wallet (trustline or SAC entry), so `chain.snapshot_usdc_balances`
builds them per row; `layout` only names the decoder and its column."""
