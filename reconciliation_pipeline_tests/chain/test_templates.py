"""Template batch decoding gives exactly what the strict one-by-one path gives: the same
values for entries that follow the layout, the same typed error text for those that do not."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import scval, xdr

from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.chain.decode import DecodedBatch
from reconciliation_pipeline.chain.keys import enum_key
from reconciliation_pipeline.chain.layouts import SAC_BALANCE
from reconciliation_pipeline.chain.templates import StructTemplates
from reconciliation_pipeline.core.snapshots import decode_entry
from reconciliation_pipeline.defs.streams.spec import STREAM_LAYOUT
from reconciliation_pipeline_tests.chain.test_fastxdr import (
    ACCOUNTS,
    ASSET_CODES,
    CONTRACT_ID,
    I128,
    INT64,
    STREAMS,
    U64,
    _stream_value,
    _trustline_ext,
)
from soroban_devnet.entries import contract_data_entry

ACCOUNT_EXAMPLE = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
ADDRESS_HOLDERS = st.binary(min_size=32, max_size=32).map(lambda raw: fastxdr._contract(raw))


def _stream(stream_id: int, row: dict[str, Any]) -> tuple[str, str]:
    key = fastxdr.u64_entry_key(CONTRACT_ID, "Stream", stream_id)
    entry = contract_data_entry(CONTRACT_ID, enum_key("Stream", scval.to_uint64(stream_id)), _stream_value(row))
    return key, entry.to_xdr()


def _flipped(entry: str, position: int, value: int) -> str:
    raw = bytearray(base64.b64decode(entry))
    raw[position % len(raw)] = value
    return base64.b64encode(bytes(raw)).decode()


def _reference(layout: Any, pairs: list[tuple[str, str]]) -> list[tuple[Any, Any]]:
    return [decode_entry(layout.decode, key, entry) for key, entry in pairs]


def _batch(decode_many: Callable[[list[str], list[str]], DecodedBatch],
           pairs: list[tuple[str, str]]) -> list[tuple[Any, Any]]:
    """A batch decoded column by column, entry by entry again: each entry's values or error."""
    batch = decode_many([key for key, _ in pairs], [entry for _, entry in pairs])
    assert all(len(values) == len(pairs) for values in batch.values.values())
    return [(None, batch.errors[i]) if i in batch.errors else ({c: v[i] for c, v in batch.values.items()}, None)
            for i in range(len(pairs))]


CHANGES = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(U64, STREAMS), min_size=1, max_size=12), flips=CHANGES,
       swapped=st.booleans())
def test_stream_batches_decode_exactly_as_one_by_one(rows: list[tuple[int, dict[str, Any]]],
                                                     flips: list[tuple[int, int]], swapped: bool) -> None:
    decoder = StructTemplates(STREAM_LAYOUT)
    pairs = [_stream(stream_id, row) for stream_id, row in rows]
    # The first batch teaches the templates; the second is read through them, corrupted in places.
    assert _batch(decoder.decode_many, pairs) == _reference(STREAM_LAYOUT, pairs)
    second = list(pairs)
    for index, (position, value) in enumerate(flips):
        key, entry = second[index % len(second)]
        second[index % len(second)] = (key, _flipped(entry, position, value))
    if swapped and len(second) > 1:  # an entry answering another key
        second[0] = (second[0][0], second[1][1])
    second.append((second[0][0], "not base64!"))
    assert _batch(decoder.decode_many, second) == _reference(STREAM_LAYOUT, second)


@settings(max_examples=100, deadline=None)
@given(balances=st.lists(st.tuples(ADDRESS_HOLDERS, I128, st.booleans(), st.booleans()), min_size=1, max_size=8),
       flips=CHANGES)
def test_sac_balance_batches_decode_exactly_as_one_by_one(balances: list[tuple[str, int, bool, bool]],
                                                          flips: list[tuple[int, int]]) -> None:
    decoder = StructTemplates(SAC_BALANCE)
    pairs = []
    for holder, amount, authorized, clawback in balances:
        value = scval.to_struct({"amount": scval.to_int128(amount), "authorized": scval.to_bool(authorized),
                                 "clawback": scval.to_bool(clawback)})
        key = fastxdr.address_entry_key(CONTRACT_ID, "Balance", holder)
        pairs.append((key, contract_data_entry(CONTRACT_ID, enum_key("Balance", scval.to_address(holder)),
                                               value).to_xdr()))
    assert _batch(decoder.decode_many, pairs) == _reference(SAC_BALANCE, pairs)
    second = [(key, _flipped(entry, *flips[i]) if i < len(flips) else entry) for i, (key, entry) in enumerate(pairs)]
    assert _batch(decoder.decode_many, second) == _reference(SAC_BALANCE, second)


def test_a_batch_of_one_shape_is_read_through_its_template() -> None:
    decoder = StructTemplates(STREAM_LAYOUT)
    row = {"sender": CONTRACT_ID, "recipient": CONTRACT_ID, "token": CONTRACT_ID, "total": 10, "released": 3,
           "status": "Active"}
    _batch(decoder.decode_many, [_stream(1, row)])
    assert sum(map(len, decoder.templates.values())) == 1
    pairs = [_stream(i, {**row, "total": 2**127 - i, "released": -(2**127) + i}) for i in range(2, 50)]
    assert _batch(decoder.decode_many, pairs) == _reference(STREAM_LAYOUT, pairs)
    assert sum(map(len, decoder.templates.values())) == 1  # nothing fell back to learn again


@settings(max_examples=60, deadline=None)
@given(balances=st.lists(st.tuples(ADDRESS_HOLDERS, I128), min_size=1, max_size=6), flips=CHANGES)
def test_usdc_holdings_batches_decode_exactly_as_one_by_one(balances: list[tuple[str, int]],
                                                            flips: list[tuple[int, int]]) -> None:
    from reconciliation_pipeline.defs.balances import rules

    pairs = []
    for holder, amount in balances:
        value = scval.to_struct({"amount": scval.to_int128(amount), "authorized": scval.to_bool(True),
                                 "clawback": scval.to_bool(False)})
        key = fastxdr.address_entry_key(CONTRACT_ID, "Balance", holder)
        pairs.append((key, contract_data_entry(CONTRACT_ID, enum_key("Balance", scval.to_address(holder)),
                                               value).to_xdr()))
    pairs += [(pairs[0][0], "AAAAAQ=="), (pairs[0][0], "%%%")]
    for _ in range(2):  # the second pass reads through the learned templates
        batch = [(key, _flipped(entry, *flips[i]) if i < len(flips) and entry.startswith("AAAA") and len(entry) > 8
                  else entry) for i, (key, entry) in enumerate(pairs)]
        assert _batch(rules.decode_usdc_holdings, batch) == [decode_entry(rules.decode_usdc_holding, k, e) for k, e in batch]


TRUSTLINES = st.tuples(ACCOUNTS, ASSET_CODES, ACCOUNTS, INT64, st.sampled_from([0, 1, 2]))


def _trustline(account: str, code: str, issuer: str, balance: int, ext: int) -> tuple[str, str]:
    from stellar_sdk import Asset, Keypair

    entry = xdr.LedgerEntryData(type=xdr.LedgerEntryType.TRUSTLINE, trust_line=xdr.TrustLineEntry(
        account_id=Keypair.from_public_key(account).xdr_account_id(),
        asset=Asset(code, issuer).to_trust_line_asset_xdr_object(), balance=xdr.Int64(balance),
        limit=xdr.Int64(2**63 - 1), flags=xdr.Uint32(1), ext=_trustline_ext(ext, 5, 6, 7)))
    return fastxdr.trustline_key(account, code, issuer), entry.to_xdr()


@settings(max_examples=150, deadline=None)
@given(trustlines=st.lists(TRUSTLINES, min_size=1, max_size=8), flips=CHANGES, swapped=st.booleans())
def test_trustline_batches_decode_exactly_as_one_by_one(trustlines: list[tuple[str, str, str, int, int]],
                                                        flips: list[tuple[int, int]], swapped: bool) -> None:
    """Credit trustlines of every extension arm, corrupted anywhere, answering another holder's key
    or not base64: the batch path gives what `decode_usdc_holding` and the key check give one by one."""
    from reconciliation_pipeline.defs.balances import rules

    pairs = [_trustline(*trustline) for trustline in trustlines]
    batch = [(key, _flipped(entry, *flips[i]) if i < len(flips) else entry) for i, (key, entry) in enumerate(pairs)]
    if swapped and len(batch) > 1:
        batch[0] = (batch[0][0], batch[1][1])
    batch.append((batch[0][0], "%%%"))
    assert _batch(rules.decode_usdc_holdings, batch) == [decode_entry(rules.decode_usdc_holding, k, e) for k, e in batch]


def test_valid_credit_trustlines_take_the_batch_path() -> None:
    """Every arm `trustline_balance` accepts, for 4- and 12-character codes, is read by the batch path."""
    issuer = ACCOUNT_EXAMPLE
    pairs = [_trustline(ACCOUNT_EXAMPLE, code, issuer, balance, ext)
             for code, balance in (("USDC", 7), ("LONGERCODE12", -(2**63))) for ext in (0, 1, 2)]
    decoded, balances = fastxdr.trustline_balances([k for k, _ in pairs], [e for _, e in pairs])
    assert decoded.all() and balances.tolist() == [7, 7, 7, -(2**63), -(2**63), -(2**63)]


def test_every_single_byte_corruption_of_a_trustline_is_judged_as_one_by_one() -> None:
    """Each byte of a trustline of each arm and code length set to other values, one at a time, in
    one batch: a corrupted arm, asset type, key type, holder or length is never read as a balance
    the one-by-one path would refuse."""
    from reconciliation_pipeline.defs.balances import rules

    batch = []
    for code in ("USDC", "LONGERCODE12"):
        for ext in (0, 1, 2):
            key, entry = _trustline(ACCOUNT_EXAMPLE, code, ACCOUNT_EXAMPLE, 12_345, ext)
            size = len(base64.b64decode(entry))
            batch += [(key, _flipped(entry, position, value)) for position in range(size) for value in (0, 1, 2, 255)]
    assert _batch(rules.decode_usdc_holdings, batch) == [decode_entry(rules.decode_usdc_holding, k, e) for k, e in batch]
