"""The USDC balances reconciliation as data: CONTRACTS.md §6 against `users.usdc_balance`.

Users with a wallet, every 5 minutes, incrementally: since protocol 23 (CAP-67)
every movement of USDC, classic payments to trustlines included, emits a
`transfer`, `mint`, `burn` or `clawback` event from the USDC Stellar Asset
Contract; a run compares the users whose wallet those events name, the users
whose row the app wrote since the last run and those with open incidents. The
nightly full sweep compares everyone.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from reconciliation_pipeline.core.amounts import exact_int_mask
from reconciliation_pipeline.core.drift import Severity
from reconciliation_pipeline.core.money import MoneyField, UsdcAsset
from reconciliation_pipeline.core.spec import (
    Authority,
    Cadence,
    ChangeEvents,
    ComparedField,
    Comparison,
    DomainSpec,
    Entity,
    Hooks,
    Incremental,
    Invariants,
    KeyKind,
    Layout,
    Missing,
    PerRow,
    Scope,
    Setting,
    Source,
)
from reconciliation_pipeline.defs.balances import rules

MOVEMENTS = ("transfer", "mint", "burn", "clawback")


class BalanceInvariants(pa.DataFrameModel):
    """A USDC balance is a non-negative exact integer in base units."""

    usdc_balance: Series[object] = pa.Field(ge=0)

    @pa.check("usdc_balance", name="exact_integer_amount")
    def exact_integer_amount(cls, values: pd.Series) -> pd.Series:
        return exact_int_mask(values)

    class Config:
        strict = False


BALANCE_TEXT = "every balance is a non-negative exact integer"

SOURCE = Source(
    name=rules.ENTITY,
    query="snapshots/balances/usdc_balances.sql",
    key_column="user_id",
    key_kind=KeyKind.U64,
    entity_type="user",
    entity_id_prefix="user_",
    amount_columns=(rules.BALANCE_FIELD,),
    invariants=Invariants(BalanceInvariants, "balance_invariants", BALANCE_TEXT, Severity.WARN),
    counts={"users_without_wallet": "snapshots/balances/users_without_wallet.sql"},
    description="Users' USDC balances as the app shows them, for the users this run compares (exact base units, "
    "1 USDC = 10,000,000): every user with a wallet in a full sweep; otherwise those whose wallet moved on chain, "
    "whose row the app wrote since the last run, or who have open incidents. Users without a wallet are only "
    "counted: they hold no on-chain USDC to compare with.",
)

HOLDING = Entity(
    name=rules.ENTITY,
    entity_type="user",
    source=SOURCE,
    key_source=PerRow(column=rules.WALLET_FIELD, build=rules.holding_keys),
    layout=Layout(decode=rules.decode_usdc_holding, columns=(rules.BALANCE_FIELD,)),
    compared=(ComparedField(rules.BALANCE_FIELD, Comparison.AMOUNT, tolerance=Setting("usdc_balance_tolerance")),),
    authority=Authority.CHAIN,
    address_columns=(rules.WALLET_FIELD,),
    muxed_accounts=True,
    chain_invariants=Invariants(BalanceInvariants, "balance_invariants", BALANCE_TEXT, Severity.CRITICAL),
    missing=Missing(field="trustline", reason="no USDC trustline: the account cannot hold USDC"),
    description="Each compared wallet's USDC on chain: a G... account's USDC trustline, a C... contract's balance "
    "entry on the USDC Stellar Asset Contract. Read 200 per request in user-id order within the run's time limit; "
    "invalid wallets are never queried.",
)

SPEC = DomainSpec(
    domain="balances",
    description="users' USDC balances in the app against their trustlines and SAC balance entries, beyond the "
    "configured tolerance (USDC_BALANCE_TOLERANCE), holders without a trustline and invalid wallets.",
    sources=(SOURCE,),
    entities=(HOLDING,),
    money=(MoneyField("user", (rules.BALANCE_FIELD,), UsdcAsset()),),
    findings_asset="usdc_balance",
    repairs_asset="usdc_balance",
    hooks=Hooks(decorate=rules.with_holder_context),
    scopes=(Scope(
        name="frequent",
        group="balances",
        cadence=Cadence.FREQUENT,
        budget="frequent",
        incremental=Incremental(
            plan_asset="usdc_movements",
            watermark_scope="usdc_movements",
            changes=ChangeEvents(contract="usdc_contract_id", topics=MOVEMENTS, column=rules.WALLET_FIELD,
                                 segments=None),
            description="The wallets whose USDC moved since the last balances run: every address the USDC Stellar "
            "Asset Contract's transfer, mint, burn and clawback events named in the ledgers since (classic payments "
            "included, CAP-67). A full sweep compares every user: the first run, a run tagged recon/sweep=full, or "
            "one whose events since the last run are out of the RPC's retention or name a party this reader cannot "
            "parse.",
        ),
    ),),
)
