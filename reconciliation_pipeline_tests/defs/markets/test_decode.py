"""Strict decoding of the markets and balances entries, on XDR built the way the devnet serves it."""

from __future__ import annotations

import pytest
from stellar_sdk import Asset, Keypair, scval, xdr

from recon_demo.encode import sac_balance_entry
from recon_demo.identities import DEVNET, account_id, contract_id
from recon_demo.worlds.balances import trustline_entry
from recon_demo.worlds.markets import market_instance_entry, pool_entry
from reconciliation_pipeline.chain.decode import DecodeError
from reconciliation_pipeline.defs.balances.rules import decode_usdc_holding
from reconciliation_pipeline.defs.markets.rules import decode_market_instance
from reconciliation_pipeline.defs.markets.spec import POOLS
from soroban_devnet.entries import contract_data_entry, unit_enum

MARKET = contract_id("market:decode")
INSTANCE_KEY = xdr.SCVal(type=xdr.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE)


def instance_with(storage: dict[str, xdr.SCVal] | None) -> str:
    value = xdr.SCVal(
        type=xdr.SCValType.SCV_CONTRACT_INSTANCE,
        instance=xdr.SCContractInstance(
            executable=xdr.ContractExecutable(type=xdr.ContractExecutableType.CONTRACT_EXECUTABLE_STELLAR_ASSET),
            storage=None if storage is None else scval.to_map(
                {scval.to_symbol(k): v for k, v in storage.items()}).map,
        ),
    )
    return contract_data_entry(MARKET, INSTANCE_KEY, value).to_xdr()


@pytest.mark.parametrize(("status", "outcome"), [("open", None), ("closed", None), ("resolved", 0), ("resolved", 1)])
def test_market_instance_round_trips(status: str, outcome: int | None) -> None:
    _, data = market_instance_entry(MARKET, status, outcome)
    assert decode_market_instance(data) == {"status": status, "winning_outcome": outcome}


def test_instance_storage_may_hold_other_keys_and_omit_the_outcome() -> None:
    data = instance_with({"Status": unit_enum("Open"), "Admin": scval.to_address(account_id("admin"))})
    assert decode_market_instance(data) == {"status": "open", "winning_outcome": None}


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (None, "no Status"),
        ({"Outcome": scval.to_uint32(0)}, "no Status"),
        ({"Status": unit_enum("Cancelled")}, "unknown variant"),
        ({"Status": unit_enum("Resolved"), "Outcome": scval.to_uint32(2)}, "neither 0"),
        ({"Status": unit_enum("Resolved"), "Outcome": scval.to_uint64(0)}, "expected SCV_U32"),
        ({"Status": scval.to_symbol("Open")}, "expected SCV_VEC"),
    ],
)
def test_a_broken_instance_is_a_decode_error(storage: dict[str, xdr.SCVal] | None, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_market_instance(instance_with(storage))


def test_a_pool_entry_is_not_an_instance() -> None:
    _, pool = pool_entry(DEVNET.amm_contract_id, 3, 10, 20)
    with pytest.raises(DecodeError, match="contract instance"):
        decode_market_instance(pool)
    assert POOLS.layout.decode(pool) == {"no_liquidity": 20, "yes_liquidity": 10}


def test_pool_liquidity_keeps_i128_extremes() -> None:
    _, pool = pool_entry(DEVNET.amm_contract_id, 3, 2**127 - 1, -(2**127))
    assert POOLS.layout.decode(pool) == {"no_liquidity": -(2**127), "yes_liquidity": 2**127 - 1}


def test_usdc_holdings_decode_from_a_trustline_or_a_sac_entry() -> None:
    _, trustline = trustline_entry(account_id("holder"), "USDC", DEVNET.usdc_issuer, 2**63 - 1)
    _, sac = sac_balance_entry(DEVNET.usdc_contract_id, contract_id("wallet"), 2**100)
    assert decode_usdc_holding(trustline) == {"usdc_balance": 2**63 - 1}
    assert decode_usdc_holding(sac) == {"usdc_balance": 2**100}
    wire = xdr.LedgerEntryData.from_xdr(trustline)
    assert wire.trust_line.asset == Asset("USDC", DEVNET.usdc_issuer).to_trust_line_asset_xdr_object()


def test_other_entries_are_not_usdc_holdings() -> None:
    account = xdr.LedgerEntryData(
        type=xdr.LedgerEntryType.ACCOUNT,
        account=xdr.AccountEntry(
            account_id=Keypair.from_public_key(account_id("a")).xdr_account_id(),
            balance=xdr.Int64(1), seq_num=xdr.SequenceNumber(xdr.Int64(1)), num_sub_entries=xdr.Uint32(0),
            inflation_dest=None, flags=xdr.Uint32(0), home_domain=xdr.String32(b""),
            thresholds=xdr.Thresholds(b"\x01\x00\x00\x00"), signers=[], ext=xdr.AccountEntryExt(0),
        ),
    ).to_xdr()
    with pytest.raises(DecodeError, match="TRUSTLINE or CONTRACT_DATA"):
        decode_usdc_holding(account)
    with pytest.raises(DecodeError):
        decode_usdc_holding("not base64!")
    _, pool = pool_entry(DEVNET.amm_contract_id, 1, 1, 1)
    with pytest.raises(DecodeError):
        decode_usdc_holding(pool)
