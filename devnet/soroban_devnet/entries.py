"""Contract-data ledger keys and entries, built with the SDK's XDR types.

The emulated contracts store exactly what a real network would return, so a
client's decoders are exercised on real XDR.
"""

from __future__ import annotations

from stellar_sdk import Address, scval, xdr


def contract_data_key(contract_id: str, key: xdr.SCVal) -> xdr.LedgerKey:
    """A persistent contract-data ledger key."""
    return xdr.LedgerKey(
        type=xdr.LedgerEntryType.CONTRACT_DATA,
        contract_data=xdr.LedgerKeyContractData(
            contract=Address(contract_id).to_xdr_sc_address(),
            key=key,
            durability=xdr.ContractDataDurability.PERSISTENT,
        ),
    )


def instance_key(contract_id: str) -> str:
    """A contract's instance storage entry, base64."""
    return contract_data_key(contract_id, xdr.SCVal(type=xdr.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE)).to_xdr()


def enum_key(variant: str, *values: xdr.SCVal) -> xdr.SCVal:
    """`DataKey::Variant(values...)` as soroban-sdk encodes it: `Vec[Symbol, values...]`."""
    return scval.to_vec([scval.to_symbol(variant), *values])


def contract_data_entry(contract_id: str, key: xdr.SCVal, value: xdr.SCVal) -> xdr.LedgerEntryData:
    """A persistent contract-data entry holding `value` under `key`."""
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
    """A `#[contracttype]` unit enum variant: `Vec[Symbol(variant)]`."""
    return scval.to_vec([scval.to_symbol(variant)])
