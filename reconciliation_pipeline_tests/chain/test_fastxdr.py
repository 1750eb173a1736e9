"""The byte-level XDR path agrees with stellar_sdk on every value it handles."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import StrKey, scval, xdr

from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.chain.decode import DecodeError
from reconciliation_pipeline.chain.keys import contract_data_key, enum_key
from reconciliation_pipeline.chain.layouts import SAC_BALANCE, Kind, ScalarLayout, StructLayout
from reconciliation_pipeline.defs.streams.spec import STREAM_LAYOUT
from soroban_devnet.entries import contract_data_entry

I128 = st.integers(min_value=-(2**127), max_value=2**127 - 1)
U64 = st.integers(min_value=0, max_value=2**64 - 1)
ACCOUNTS = st.binary(min_size=32, max_size=32).map(StrKey.encode_ed25519_public_key)
CONTRACTS = st.binary(min_size=32, max_size=32).map(StrKey.encode_contract)
ADDRESSES = st.one_of(ACCOUNTS, CONTRACTS)
VARIANTS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=32)
CONTRACT_ID = StrKey.encode_contract(bytes(range(32)))


@given(contract=CONTRACTS, variant=VARIANTS, key=U64)
def test_u64_keys_match_the_sdk(contract: str, variant: str, key: int) -> None:
    expected = contract_data_key(contract, enum_key(variant, scval.to_uint64(key))).to_xdr()
    assert fastxdr.u64_entry_key(contract, variant, key) == expected


@given(contract=CONTRACTS, variant=VARIANTS, address=ADDRESSES)
def test_address_keys_match_the_sdk(contract: str, variant: str, address: str) -> None:
    expected = contract_data_key(contract, enum_key(variant, scval.to_address(address))).to_xdr()
    assert fastxdr.address_entry_key(contract, variant, address) == expected


@given(contract=CONTRACTS, variant=VARIANTS, keys=st.lists(U64, max_size=8))
def test_u64_keys_of_a_batch_are_the_keys_one_by_one(contract: str, variant: str, keys: list[int]) -> None:
    assert fastxdr.u64_entry_keys(contract, variant, keys) == [fastxdr.u64_entry_key(contract, variant, k)
                                                                for k in keys]


def _one_by_one(contract: str, variant: str, address: str) -> str:
    try:
        return fastxdr.address_entry_key(contract, variant, address)
    except (ValueError, fastxdr.XdrError) as error:
        return f"{type(error).__name__}: {error}"


@settings(max_examples=200)
@given(contract=CONTRACTS, variant=VARIANTS, addresses=st.lists(ADDRESSES, min_size=1, max_size=8),
       flips=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 55), st.sampled_from("AZ27=a\u00e9")), max_size=3))
def test_address_keys_of_a_batch_are_the_keys_one_by_one(
        contract: str, variant: str, addresses: list[str], flips: list[tuple[int, int, str]]) -> None:
    """Valid G... and C... addresses, and ones with a character changed (a bad checksum, a letter
    outside the alphabet, a non-ASCII one): each key or error as `address_entry_key` gives it."""
    for index, position, character in flips:
        address = addresses[index % len(addresses)]
        addresses[index % len(addresses)] = address[:position] + character + address[position + 1 :]
    expected = [_one_by_one(contract, variant, address) for address in addresses]
    if any(not key.startswith("AAAA") for key in expected):
        with pytest.raises((ValueError, fastxdr.XdrError)) as raised:
            fastxdr.address_entry_keys(contract, variant, addresses)
        assert f"{type(raised.value).__name__}: {raised.value}" == next(e for e in expected if not e.startswith("AAAA"))
    else:
        assert fastxdr.address_entry_keys(contract, variant, addresses) == expected


def _entry(value: xdr.SCVal) -> str:
    return contract_data_entry(CONTRACT_ID, enum_key("Stream", scval.to_uint64(1)), value).to_xdr()


def _stream_value(row: dict[str, Any]) -> xdr.SCVal:
    return scval.to_struct(
        {
            "sender": scval.to_address(row["sender"]),
            "recipient": scval.to_address(row["recipient"]),
            "token": scval.to_address(row["token"]),
            "total": scval.to_int128(row["total"]),
            "released": scval.to_int128(row["released"]),
            "status": scval.to_vec([scval.to_symbol(row["status"])]),
        }
    )


STREAMS = st.fixed_dictionaries(
    {
        "sender": ADDRESSES,
        "recipient": ADDRESSES,
        "token": CONTRACTS,
        "total": I128,
        "released": I128,
        "status": st.sampled_from(["Active", "Paused", "Completed", "Cancelled"]),
    }
)


@settings(max_examples=300)
@given(row=STREAMS)
def test_stream_entries_decode_identically(row: dict[str, Any]) -> None:
    entry = _entry(_stream_value(row))
    decoded = STREAM_LAYOUT.decode(entry)
    assert decoded == STREAM_LAYOUT.decode_reference(entry)
    assert decoded == {**row, "status": row["status"].lower()}


def _outcome(layout: StructLayout | ScalarLayout, entry: str) -> tuple[str, Any]:
    try:
        return "ok", layout.decode(entry)
    except DecodeError:
        return "error", None


def _reference_outcome(layout: StructLayout | ScalarLayout, entry: str) -> tuple[str, Any]:
    try:
        return "ok", layout.decode_reference(entry)
    except DecodeError:
        return "error", None


SCALARS = st.one_of(
    I128.map(scval.to_int128),
    U64.map(scval.to_uint64),
    st.integers(0, 2**32 - 1).map(scval.to_uint32),
    st.booleans().map(scval.to_bool),
    st.just(scval.to_void()),
    VARIANTS.map(scval.to_symbol),
    ADDRESSES.map(scval.to_address),
    st.text(max_size=8).map(scval.to_string),
    st.sampled_from(["Active", "Frozen", "Paused"]).map(lambda v: scval.to_vec([scval.to_symbol(v)])),
)


@settings(max_examples=300)
@given(row=STREAMS, field=st.sampled_from(list(STREAM_LAYOUT.fields)), replacement=SCALARS,
       drop=st.booleans(), extra=st.booleans())
def test_malformed_stream_entries_are_rejected_by_both_paths(
    row: dict[str, Any], field: str, replacement: xdr.SCVal, drop: bool, extra: bool
) -> None:
    value = _stream_value(row)
    entries = [e for e in value.map.sc_map if not (drop and scval.from_symbol(e.key) == field)]
    for e in entries:
        if scval.from_symbol(e.key) == field:
            e.val = replacement
    if extra:
        entries.append(xdr.SCMapEntry(key=scval.to_symbol("zz_extra"), val=scval.to_uint32(1)))
    entry = _entry(xdr.SCVal(xdr.SCValType.SCV_MAP, map=xdr.SCMap(entries)))
    assert _outcome(STREAM_LAYOUT, entry) == _reference_outcome(STREAM_LAYOUT, entry)


@given(value=SCALARS)
def test_non_struct_values_are_rejected_by_both_paths(value: xdr.SCVal) -> None:
    entry = _entry(value)
    assert _outcome(STREAM_LAYOUT, entry) == ("error", None) == _reference_outcome(STREAM_LAYOUT, entry)


@given(amount=I128, authorized=st.booleans(), clawback=st.booleans())
def test_sac_balances_decode_identically(amount: int, authorized: bool, clawback: bool) -> None:
    value = scval.to_struct({"amount": scval.to_int128(amount), "authorized": scval.to_bool(authorized),
                             "clawback": scval.to_bool(clawback)})
    entry = _entry(value)
    assert SAC_BALANCE.decode(entry) == SAC_BALANCE.decode_reference(entry) == {
        "amount": amount, "authorized": authorized, "clawback": clawback}


@given(value=SCALARS)
def test_scalar_layouts_agree(value: xdr.SCVal) -> None:
    layout = ScalarLayout("score", Kind.U32)
    entry = _entry(value)
    assert _outcome(layout, entry) == _reference_outcome(layout, entry)


@pytest.mark.parametrize("payload", ["not base64!", "AAAA", "AAAABg==", ""])
def test_garbage_is_a_decode_error(payload: str) -> None:
    with pytest.raises(DecodeError):
        STREAM_LAYOUT.decode(payload)
    with pytest.raises(DecodeError):
        STREAM_LAYOUT.decode_reference(payload)


@settings(max_examples=200)
@given(row=STREAMS, stream_id=U64)
def test_seeded_stream_entries_equal_the_sdk_encoding(row: dict[str, Any], stream_id: int) -> None:
    from recon_demo.encode import stream_entry, stream_value

    sdk_row = {**row, "status": row["status"].lower()}
    key = enum_key("Stream", scval.to_uint64(stream_id))
    expected = (contract_data_key(CONTRACT_ID, key).to_xdr(),
                contract_data_entry(CONTRACT_ID, key, stream_value(sdk_row)).to_xdr())
    assert stream_entry(CONTRACT_ID, {**sdk_row, "stream_id": stream_id}) == expected


@given(holder=ADDRESSES, amount=I128)
def test_seeded_sac_balances_equal_the_sdk_encoding(holder: str, amount: int) -> None:
    from recon_demo.encode import sac_balance_entry

    key = enum_key("Balance", scval.to_address(holder))
    value = scval.to_struct({"amount": scval.to_int128(amount), "authorized": scval.to_bool(True),
                             "clawback": scval.to_bool(False)})
    expected = (contract_data_key(CONTRACT_ID, key).to_xdr(), contract_data_entry(CONTRACT_ID, key, value).to_xdr())
    assert sac_balance_entry(CONTRACT_ID, holder, amount) == expected


ASSET_CODES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=12)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(account=ACCOUNTS, code=ASSET_CODES, issuer=ACCOUNTS)
def test_trustline_keys_match_the_sdk(account: str, code: str, issuer: str) -> None:
    from stellar_sdk import Asset, Keypair

    expected = xdr.LedgerKey(
        type=xdr.LedgerEntryType.TRUSTLINE,
        trust_line=xdr.LedgerKeyTrustLine(
            account_id=Keypair.from_public_key(account).xdr_account_id(),
            asset=Asset(code, issuer).to_trust_line_asset_xdr_object(),
        ),
    ).to_xdr()
    assert fastxdr.trustline_key(account, code, issuer) == expected


def _trustline_ext(kind: int, buying: int, selling: int, pool_uses: int) -> xdr.TrustLineEntryExt:
    if kind == 0:
        return xdr.TrustLineEntryExt(0)
    v1_ext = (xdr.TrustLineEntryV1Ext(0) if kind == 1 else xdr.TrustLineEntryV1Ext(
        2, v2=xdr.TrustLineEntryExtensionV2(xdr.Int32(pool_uses), xdr.TrustLineEntryExtensionV2Ext(0))))
    return xdr.TrustLineEntryExt(1, v1=xdr.TrustLineEntryV1(
        liabilities=xdr.Liabilities(buying=xdr.Int64(buying), selling=xdr.Int64(selling)), ext=v1_ext))


@settings(max_examples=200)
@given(account=ACCOUNTS, code=ASSET_CODES, issuer=ACCOUNTS, balance=INT64, limit=INT64,
       flags=st.integers(0, 7), ext=st.sampled_from([0, 1, 2]), buying=INT64, selling=INT64,
       pool_uses=st.integers(-(2**31), 2**31 - 1))
def test_trustline_balances_decode_like_the_sdk(
    account: str, code: str, issuer: str, balance: int, limit: int, flags: int, ext: int,
    buying: int, selling: int, pool_uses: int,
) -> None:
    from stellar_sdk import Asset, Keypair

    entry = xdr.LedgerEntryData(
        type=xdr.LedgerEntryType.TRUSTLINE,
        trust_line=xdr.TrustLineEntry(
            account_id=Keypair.from_public_key(account).xdr_account_id(),
            asset=Asset(code, issuer).to_trust_line_asset_xdr_object(),
            balance=xdr.Int64(balance), limit=xdr.Int64(limit), flags=xdr.Uint32(flags),
            ext=_trustline_ext(ext, buying, selling, pool_uses),
        ),
    ).to_xdr()
    assert fastxdr.trustline_balance(entry) == xdr.LedgerEntryData.from_xdr(entry).trust_line.balance.int64 == balance


@pytest.mark.parametrize("payload", ["not base64!", "AAAAAQ==", _entry(scval.to_uint32(1))])
def test_non_trustlines_are_rejected(payload: str) -> None:
    with pytest.raises(fastxdr.XdrError):
        fastxdr.trustline_balance(payload)
