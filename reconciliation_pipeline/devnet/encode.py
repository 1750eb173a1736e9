"""Ledger entries in the CONTRACTS.md layouts, built with the SDK's XDR types.

The devnet stores exactly what a real network would return, so the pipeline's
decoders are exercised on real XDR.
"""

from __future__ import annotations

from typing import Any

from stellar_sdk import Address, scval, xdr

from reconciliation_pipeline.chain import fastxdr


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
    """(base64 LedgerKey, base64 LedgerEntryData) of a `Stream(u64)` entry.

    Byte-level (`fastxdr`) so a million entries seed in seconds; a property
    test checks the bytes equal `stream_value` built with the SDK.
    """
    key = (fastxdr.SCV_VEC, [(fastxdr.SCV_SYMBOL, "Stream"), (fastxdr.SCV_U64, int(row["stream_id"]))])
    value = fastxdr.struct_value(
        {
            "sender": (fastxdr.SCV_ADDRESS, row["sender"]),
            "recipient": (fastxdr.SCV_ADDRESS, row["recipient"]),
            "token": (fastxdr.SCV_ADDRESS, row["token"]),
            "total": (fastxdr.SCV_I128, int(row["total"])),
            "released": (fastxdr.SCV_I128, int(row["released"])),
            "status": fastxdr.unit_enum_value(row["status"].capitalize()),
        }
    )
    return fastxdr.contract_data_entry(contract_id, key, value)


def sac_balance_entry(sac_contract_id: str, holder: str, amount: int) -> tuple[str, str]:
    """A holder's balance on a Stellar Asset Contract: `{amount, authorized, clawback}`."""
    key = (fastxdr.SCV_VEC, [(fastxdr.SCV_SYMBOL, "Balance"), (fastxdr.SCV_ADDRESS, holder)])
    value = fastxdr.struct_value(
        {"amount": (fastxdr.SCV_I128, amount), "authorized": (fastxdr.SCV_BOOL, True),
         "clawback": (fastxdr.SCV_BOOL, False)}
    )
    return fastxdr.contract_data_entry(sac_contract_id, key, value)
