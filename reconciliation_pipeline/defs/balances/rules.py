"""What is truly balances-specific: which entry holds a holder's USDC, and what its absence means.

A G... account's USDC is its classic trustline; a C... contract's is its
`Balance(Address)` entry on the USDC Stellar Asset Contract (CONTRACTS.md §6). An M...
(muxed, SEP-23) wallet is a virtual sub-account of a G... account: its USDC is that account's
trustline, and its findings say which account was read.
The two differ when there is no entry: an account without a USDC trustline
cannot hold USDC (reported as a missing trustline, never read as 0), while a
contract with no balance entry on the SAC holds 0 (what the SAC's own
`balance()` returns). One decoder reads either entry.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from reconciliation_pipeline.chain import fastxdr, strkey
from reconciliation_pipeline.chain.decode import DecodedBatch, DecodeError
from reconciliation_pipeline.chain.keys import sac_balance_key, trustline_key
from reconciliation_pipeline.chain.layouts import SAC_BALANCE
from reconciliation_pipeline.chain.templates import StructTemplates
from reconciliation_pipeline.core.results import DomainInputs, RowKeys
from reconciliation_pipeline.core.snapshots import READ_MISSING, READ_OK, decode_entry
from reconciliation_pipeline.resources import StellarContractsResource

BALANCE_FIELD = "usdc_balance"
WALLET_FIELD = "wallet_address"
HOLDER_KIND_FIELD = "holder_kind"
ACCOUNT = "account"
CONTRACT = "contract"
ENTITY = "usdc_balances"


def _entry_type(entry_data_b64: str) -> int:
    try:
        head = base64.b64decode(entry_data_b64[:8], validate=True)
    except ValueError as exc:
        raise DecodeError(f"not LedgerEntryData XDR: {exc}") from exc
    if len(head) < 4:
        raise DecodeError("not LedgerEntryData XDR: too short")
    return int.from_bytes(head[:4], "big")


def decode_usdc_holding(entry_data_b64: str) -> dict[str, Any]:
    """A USDC trustline (`balance`, int64) or a SAC balance entry (`amount`, i128) -> the balance.

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


_SAC_BALANCES = StructTemplates(SAC_BALANCE)
_CONTRACT_DATA_PREFIX = base64.b64encode(fastxdr._U32.pack(fastxdr.CONTRACT_DATA) + bytes(4))[:8].decode()
"""How a contract-data entry (extension 0) starts in base64: those go through the SAC templates."""


def decode_usdc_holdings(ledger_keys: Sequence[str], entries: Sequence[str]) -> DecodedBatch:
    """`decode_usdc_holding` for a batch of (ledger key, entry): SAC balance entries by byte
    templates (`chain.templates`), credit trustlines a batch at a time (`fastxdr.trustline_balances`),
    anything else one by one; the same values and error texts as one by one."""
    sac = np.fromiter((entry.startswith(_CONTRACT_DATA_PREFIX) for entry in entries), dtype=bool, count=len(entries))
    others = np.flatnonzero(~sac).tolist()
    read, balances = fastxdr.trustline_balances([ledger_keys[i] for i in others], [entries[i] for i in others])
    values = np.full(len(entries), None, dtype=object)
    values[np.asarray(others, dtype=np.intp)[read]] = balances[read]
    one_by_one = [position for position, fast in zip(others, read.tolist(), strict=True) if not fast]
    rest = DecodedBatch.of((BALANCE_FIELD,), [decode_entry(decode_usdc_holding, ledger_keys[i], entries[i])
                                              for i in one_by_one])
    values[one_by_one] = rest.values[BALANCE_FIELD]
    chosen = np.flatnonzero(sac).tolist()
    contract_balances = _SAC_BALANCES.decode_many([ledger_keys[i] for i in chosen], [entries[i] for i in chosen])
    values[chosen] = contract_balances.values["amount"]
    errors = {**{one_by_one[i]: error for i, error in rest.errors.items()},
              **{chosen[i]: error for i, error in contract_balances.errors.items()}}
    return DecodedBatch(values={BALANCE_FIELD: values}, errors=errors)


def holder_kinds(wallets: pd.Series) -> pd.Series:
    """`account` (G..., or M... read as its G...), `contract` (C...) or None (not a valid address).
    Each value checked once."""
    uniques = pd.unique(wallets.astype(object))
    kinds = {w: ACCOUNT if strkey.is_account(w) or strkey.muxed_account_base(w) is not None
             else CONTRACT if strkey.is_contract(w) else None for w in uniques}
    return wallets.astype(object).map(kinds).astype(object)


def account_read(wallet: str) -> str:
    """The account whose trustline holds a wallet's USDC: itself, or a muxed wallet's base account."""
    return strkey.muxed_account_base(wallet) or wallet


def holding_keys(holders: pd.DataFrame, contracts: StellarContractsResource) -> RowKeys:
    """Each holder's ledger key: its USDC trustline (G...) or its SAC balance entry (C...); a
    contract without an entry holds 0, an account without a trustline is missing."""
    kinds = holder_kinds(holders[WALLET_FIELD])
    usdc = contracts.usdc_contract_id
    keys = pd.Series(
        [trustline_key(account_read(w), contracts.usdc_code(), contracts.usdc_issuer) if k == ACCOUNT
         else sac_balance_key(usdc, w) for w, k in zip(holders[WALLET_FIELD], kinds, strict=True)],
        index=holders.index, dtype=object,
    )
    # A list, not Series.map: map would infer float64 for [0, None] and the 0 would become 0.0.
    absent = pd.Series([0 if k == CONTRACT else None for k in kinds], index=holders.index, dtype=object)
    return RowKeys(keys=keys, absent=absent, context=pd.DataFrame({HOLDER_KIND_FIELD: kinds}))


def _muxed_note(wallet: object) -> dict[str, str]:
    base = strkey.muxed_account_base(wallet)
    if base is None:
        return {}
    return {"read_as_account": base,
            "note": "a muxed (M...) wallet: the USDC trustline of its base account was read; the balance is the "
                    "whole account's, shared by every muxed id of it"}


def with_holder_context(findings: pd.DataFrame, inputs: DomainInputs) -> pd.DataFrame:
    """Details name the wallet and, where it was read, which kind of entry holds its USDC."""
    db = inputs.sources[ENTITY].frame
    chain = inputs.chains[ENTITY].frame
    wallets = findings["entity_key"].map(db.assign(_key=db["user_id"].astype(str)).set_index("_key")[WALLET_FIELD])
    reads = chain.assign(_key=chain["user_id"].astype(str)).set_index("_key")
    present = reads["last_modified_ledger"].notna()
    entry = pd.Series(None, index=reads.index, dtype=object)
    entry[(reads["read_status"] == READ_OK) & present] = "present"
    entry[reads["read_status"].isin([READ_OK, READ_MISSING]) & ~present] = "absent"
    kinds = findings["entity_key"].map(reads[HOLDER_KIND_FIELD]) if len(reads) else findings["entity_key"].map({})
    entries = findings["entity_key"].map(entry) if len(reads) else findings["entity_key"].map({})
    findings = findings.copy()
    findings["details"] = [
        {**details, "wallet_address": wallet,
         **({"holder_kind": kind} if isinstance(kind, str) else {}),
         **({"balance_entry": e} if isinstance(e, str) else {}),
         **_muxed_note(wallet)}
        for details, wallet, kind, e in zip(findings["details"], wallets, kinds, entries, strict=True)
    ]
    return findings
