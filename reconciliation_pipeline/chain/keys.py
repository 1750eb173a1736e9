"""Ledger keys for the layouts in CONTRACTS.md, encoded as base64 XDR.

Keys are kept encoded: the encoded form is what the RPC returns in each entry's
`key`, so matching results to requests is a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

from stellar_sdk import Address, Asset, scval, xdr

from reconciliation_pipeline.chain import fastxdr


def enum_key(variant: str, *values: xdr.SCVal) -> xdr.SCVal:
    """`DataKey::Variant(values...)` as soroban-sdk encodes it: `Vec[Symbol, values...]`."""
    return scval.to_vec([scval.to_symbol(variant), *values])


def contract_data_key(
    contract_id: str,
    key: xdr.SCVal,
    durability: xdr.ContractDataDurability = xdr.ContractDataDurability.PERSISTENT,
) -> xdr.LedgerKey:
    return xdr.LedgerKey(
        type=xdr.LedgerEntryType.CONTRACT_DATA,
        contract_data=xdr.LedgerKeyContractData(
            contract=Address(contract_id).to_xdr_sc_address(),
            key=key,
            durability=durability,
        ),
    )


def u64_entry_key(contract_id: str, variant: str, entity_key: int) -> str:
    """Persistent `Variant(u64)` entry, e.g. `Stream(7)` (byte-level encoder, checked against the SDK)."""
    return fastxdr.u64_entry_key(contract_id, variant, entity_key)


def u64_entry_keys(contract_id: str, variant: str, entity_keys: Sequence[int]) -> list[str]:
    """`u64_entry_key` of many keys at once."""
    return fastxdr.u64_entry_keys(contract_id, variant, entity_keys)


def address_entry_keys(contract_id: str, variant: str, addresses: Sequence[str]) -> list[str]:
    """`address_entry_key` of many addresses at once."""
    return fastxdr.address_entry_keys(contract_id, variant, addresses)


def address_entry_key(contract_id: str, variant: str, address: str) -> str:
    """Persistent `Variant(Address)` entry, e.g. `Position(G...)`, `Balance(C...)`."""
    return fastxdr.address_entry_key(contract_id, variant, address)


def instance_key(contract_id: str) -> str:
    """A contract's instance storage entry."""
    return contract_data_key(
        contract_id, xdr.SCVal(type=xdr.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE)
    ).to_xdr()


def sac_balance_key(sac_contract_id: str, holder: str) -> str:
    """A holder's balance entry on a Stellar Asset Contract (CONTRACTS.md §6)."""
    return address_entry_key(sac_contract_id, "Balance", holder)


def trustline_key(account_id: str, asset_code: str, issuer: str) -> str:
    """A G... account's classic trustline to `asset_code:issuer` (byte-level, checked against the SDK)."""
    return fastxdr.trustline_key(account_id, asset_code, issuer)


def sac_contract_id(asset_code: str, issuer: str, network_passphrase: str) -> str:
    return Asset(asset_code, issuer).contract_id(network_passphrase)
