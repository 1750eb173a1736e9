"""Ledger entries in the CONTRACTS.md layouts, built with the SDK's XDR types.

The devnet stores exactly what a real network would return, so the pipeline's
decoders are exercised on real XDR.
"""

from __future__ import annotations

from typing import Any

from stellar_sdk import Address, scval, xdr

from reconciliation_pipeline.chain.keys import contract_data_key, enum_key, sac_balance_key


def contract_data_entry(contract_id: str, key: xdr.SCVal, value: xdr.SCVal) -> xdr.LedgerEntryData:
    return xdr.LedgerEntryData(
        type=xdr.LedgerEntryType.CONTRACT_DATA,
        contract_data=xdr.ContractDataEntry(
            ext=xdr.ExtensionPoint(0),
            contract=Address(contract_id).to_xdr_sc_address(),
            key=key,
            durability=xdr.ContractDataDurability.PERSISTENT,
            val=value,
        ),
    )


def unit_enum(variant: str) -> xdr.SCVal:
    return scval.to_vec([scval.to_symbol(variant)])


def stream_value(row: dict[str, Any]) -> xdr.SCVal:
    """`Stream { sender, recipient, token, total, released, status }`."""
    return scval.to_struct(
        {
            "sender": scval.to_address(row["sender"]),
            "recipient": scval.to_address(row["recipient"]),
            "token": scval.to_address(row["token"]),
            "total": scval.to_int128(row["total"]),
            "released": scval.to_int128(row["released"]),
            "status": unit_enum(row["status"].capitalize()),
        }
    )


def stream_entry(contract_id: str, row: dict[str, Any]) -> tuple[str, str]:
    """(base64 LedgerKey, base64 LedgerEntryData) of a `Stream(u64)` entry."""
    key = enum_key("Stream", scval.to_uint64(int(row["stream_id"])))
    ledger_key = contract_data_key(contract_id, key).to_xdr()
    return ledger_key, contract_data_entry(contract_id, key, stream_value(row)).to_xdr()


def sac_balance_entry(sac_contract_id: str, holder: str, amount: int) -> tuple[str, str]:
    """A holder's balance on a Stellar Asset Contract: `{amount, authorized, clawback}`."""
    key = enum_key("Balance", scval.to_address(holder))
    value = scval.to_struct(
        {"amount": scval.to_int128(amount), "authorized": scval.to_bool(True), "clawback": scval.to_bool(False)}
    )
    ledger_key = sac_balance_key(sac_contract_id, holder)
    return ledger_key, contract_data_entry(sac_contract_id, key, value).to_xdr()
