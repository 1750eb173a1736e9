"""The fast strkey functions agree with `stellar_sdk.StrKey` on valid and corrupted addresses."""

from __future__ import annotations

import binascii

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st
from stellar_sdk import MuxedAccount, StrKey

from reconciliation_pipeline.chain import strkey
from reconciliation_pipeline.chain.addresses import is_valid_address, valid_address_mask

KEYS = st.binary(min_size=32, max_size=32)
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def sdk_account(text: str) -> bool:
    return StrKey.is_valid_ed25519_public_key(text)


def sdk_contract(text: str) -> bool:
    return StrKey.is_valid_contract(text)


@given(key=KEYS)
def test_encoding_and_decoding_equal_the_sdk(key: bytes) -> None:
    account, contract = StrKey.encode_ed25519_public_key(key), StrKey.encode_contract(key)
    assert strkey.encode_account(key) == account
    assert strkey.encode_contract(key) == contract
    assert strkey.decode_account(account) == key == strkey.decode_contract(contract)
    assert strkey.is_account(account) and strkey.is_contract(contract)
    assert not strkey.is_account(contract) and not strkey.is_contract(account)


@given(key=KEYS, data=st.data())
def test_corrupted_addresses_are_judged_like_the_sdk(key: bytes, data: st.DataObject) -> None:
    valid = data.draw(st.sampled_from([StrKey.encode_ed25519_public_key(key), StrKey.encode_contract(key)]))
    position = data.draw(st.integers(0, len(valid) - 1))
    corruption = data.draw(st.sampled_from(["replace", "drop", "insert", "lower", "swap_prefix", "space"]))
    if corruption == "replace":
        text = valid[:position] + data.draw(st.sampled_from(BASE32 + "=18a!é")) + valid[position + 1:]
    elif corruption == "drop":
        text = valid[:position] + valid[position + 1:]
    elif corruption == "insert":
        text = valid[:position] + data.draw(st.sampled_from(BASE32)) + valid[position:]
    elif corruption == "lower":
        text = valid.lower()
    elif corruption == "swap_prefix":
        text = data.draw(st.sampled_from("GCMSTPAB")) + valid[1:]
    else:
        text = f" {valid}"
    assert strkey.is_account(text) == sdk_account(text)
    assert strkey.is_contract(text) == sdk_contract(text)


@given(text=st.text(max_size=70))
def test_arbitrary_text_is_judged_like_the_sdk(text: str) -> None:
    assert strkey.is_account(text) == sdk_account(text)
    assert strkey.is_contract(text) == sdk_contract(text)


def test_non_strings_are_not_addresses() -> None:
    assert not strkey.is_account(None) and not strkey.is_contract(12)


@given(keys=st.lists(st.sampled_from([bytes([i]) * 32 for i in range(6)]) | KEYS, max_size=40),
       versions=st.lists(st.sampled_from([strkey.ACCOUNT_VERSION, strkey.CONTRACT_VERSION]), min_size=1, max_size=6),
       capacity=st.integers(1, 8))
def test_the_encoding_cache_answers_as_the_sdk_under_repeats_both_versions_and_its_bound(
        keys: list[bytes], versions: list[int], capacity: int) -> None:
    """The same 32 bytes are a different strkey as an account and as a contract, repeats are served
    from the cache, and it never holds more than its capacity."""
    cache = strkey.EncodingCache(capacity=capacity)
    rows = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)
    for version in versions:
        sdk = StrKey.encode_ed25519_public_key if version == strkey.ACCOUNT_VERSION else StrKey.encode_contract
        assert cache.encode_many(rows, version).tolist() == [sdk(key) for key in keys]
        assert strkey.encode_many(rows, version).tolist() == [sdk(key) for key in keys]
        assert len(cache) <= max(capacity, len(set(keys)))


def _corrupted(valid: str, position: int) -> str:
    """The address with one character changed (its checksum then fails, or its alphabet)."""
    return valid[:position] + ("A" if valid[position] != "A" else "B") + valid[position + 1:]


ADDRESS_LIKE = (
    KEYS.map(StrKey.encode_ed25519_public_key)
    | KEYS.map(StrKey.encode_contract)
    | KEYS.map(StrKey.encode_pre_auth_tx)  # a valid strkey of another version
    | st.tuples(KEYS.map(StrKey.encode_ed25519_public_key), st.integers(0, 55)).map(lambda t: _corrupted(*t))
    | KEYS.map(lambda key: StrKey.encode_contract(key).lower())
    | st.text(max_size=60)
    | st.none()
    | st.integers()
    | st.just(float("nan"))
)


@given(values=st.lists(ADDRESS_LIKE, max_size=30))
def test_addresses_validated_together_are_judged_each_like_the_sdk(values: list[object]) -> None:
    """All at once (every value text of 56 characters, or a mix that is not) as one by one."""
    expected = [isinstance(v, str) and (sdk_account(v) or sdk_contract(v)) for v in values]
    assert strkey.valid_addresses(values).tolist() == expected
    texts = [v for v in values if isinstance(v, str) and len(v) == 56 and v.isascii()]
    assert strkey.valid_addresses(texts).tolist() == [sdk_account(v) or sdk_contract(v) for v in texts]


@given(payloads=st.lists(st.binary(min_size=35, max_size=35), max_size=20))
def test_checksums_of_many_payloads_equal_crc_hqx(payloads: list[bytes]) -> None:
    rows = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(len(payloads), 35)
    assert strkey._crcs(rows).tolist() == [binascii.crc_hqx(p[:33], 0) for p in payloads]


@given(values=st.lists(ADDRESS_LIKE, max_size=30), muxed=st.booleans())
def test_an_address_column_is_judged_row_by_row_on_its_own_index(values: list[object], muxed: bool) -> None:
    """Repeats, missing values (None, NaN) and, where allowed, M... addresses, each row as alone."""
    column = pd.Series(values + values[:3], index=range(100, 100 + len(values) + min(3, len(values))), dtype=object)
    mask = valid_address_mask(column, allow_muxed=muxed)
    assert mask.index.equals(column.index) and mask.dtype == bool
    assert mask.tolist() == [is_valid_address(v) or (muxed and strkey.muxed_account_base(v) is not None)
                             for v in column]


def test_a_muxed_address_is_valid_only_where_allowed() -> None:
    account = StrKey.encode_ed25519_public_key(bytes(range(32)))
    muxed = MuxedAccount(account, 7).account_muxed
    column = pd.Series([muxed, account, None], dtype=object)
    assert valid_address_mask(column, allow_muxed=True).tolist() == [True, True, False]
    assert valid_address_mask(column).tolist() == [False, True, False]
