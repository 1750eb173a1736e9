"""The byte-level LedgerCloseMeta reader against the SDK's XDR classes.

Every shape of transaction a busy ledger holds (built with the SDK in
`soroban_devnet.traffic`) is skipped to the byte, in TransactionMeta v3 and v4;
a ledger of mixed traffic decodes only the transactions touching a watched
contract and yields their events and changes where they are.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import StrKey, scval, xdr

from reconciliation_pipeline.chain import ledgermeta
from reconciliation_pipeline.chain.fastxdr import XdrError
from reconciliation_pipeline.chain.ledgermeta import Watch, parse_ledger
from soroban_devnet import history
from soroban_devnet.traffic import KINDS, TrafficMaker

LEDGER = 2_000_000
PASSPHRASE = "Standalone Network ; February 2017"
WATCHED = StrKey.encode_contract(bytes([7] * 32))


@pytest.mark.parametrize("meta_version", [3, 4])
@pytest.mark.parametrize("kind", KINDS)
def test_every_transaction_shape_is_skipped_to_the_byte(kind: str, meta_version: int) -> None:
    maker = TrafficMaker(LEDGER, PASSPHRASE, meta_version)
    for seed in range(25):
        envelope, result, meta = maker.make(kind, random.Random(seed))
        assert ledgermeta.skipped(ledgermeta._envelope, envelope) == len(envelope)
        assert ledgermeta.skipped(ledgermeta._transaction_result, result) == len(result)
        assert ledgermeta.skipped(ledgermeta._transaction_meta, meta) == len(meta)
        assert xdr.TransactionMeta.from_xdr_bytes(meta).v == meta_version


def _scvals(depth: int = 0) -> st.SearchStrategy[xdr.SCVal]:
    leaves = st.one_of(
        st.integers(-(2**127), 2**127 - 1).map(scval.to_int128),
        st.integers(0, 2**64 - 1).map(scval.to_uint64),
        st.integers(0, 2**32 - 1).map(scval.to_uint32),
        st.booleans().map(scval.to_bool),
        st.just(scval.to_void()),
        st.text("abcxyz_", max_size=12).map(scval.to_symbol),
        st.text(max_size=12).map(scval.to_string),
        st.binary(max_size=40).map(scval.to_bytes),
        st.binary(min_size=32, max_size=32).map(lambda b: scval.to_address(StrKey.encode_contract(b))),
        st.integers(0, 2**256 - 1).map(scval.to_uint256),
    )
    if depth >= 2:
        return leaves
    return st.one_of(leaves, st.lists(_scvals(depth + 1), max_size=4).map(scval.to_vec),
                     st.lists(_scvals(depth + 1), max_size=3).map(
                         lambda vs: scval.to_map({scval.to_symbol(f"k{i}"): v for i, v in enumerate(vs)})))


@settings(max_examples=200, deadline=None)
@given(value=_scvals())
def test_any_scval_is_skipped_to_the_byte(value: xdr.SCVal) -> None:
    raw = value.to_xdr_bytes()
    assert ledgermeta.skipped(ledgermeta._scval, raw) == len(raw)


def _ledger(meta_version: int, txs: list[tuple[str, bytes, bytes, bytes]]) -> bytes:
    header = history.header_packer(23)(LEDGER, bytes(32), 1_700_000_000)
    import hashlib

    return history.ledger_close_meta(2 if meta_version == 4 else 1, hashlib.sha256(header).digest(), header,
                                     bytes(32), txs, [])


def _mixed_ledger(meta_version: int, watched_at: set[int], n: int = 60) -> tuple[bytes, dict[int, str]]:
    """`n` transactions of every shape; those at `watched_at` (1-based) invoke the watched contract."""
    maker = TrafficMaker(LEDGER, PASSPHRASE, meta_version)
    rng = random.Random(meta_version)
    txs, hashes = [], {}
    for index in range(1, n + 1):
        tx_hash = rng.randbytes(32).hex()
        if index in watched_at:
            envelope, result, meta = maker.invoke(
                rng, contract=WATCHED,
                events=[([scval.to_symbol("loan_created"), scval.to_uint64(index)], scval.to_int128(index)),
                        ([scval.to_symbol("loan_repaid"), scval.to_uint64(index)], scval.to_int128(1))],
                writes=[(scval.to_vec([scval.to_symbol("Loan"), scval.to_uint64(index)]), scval.to_int128(index))])
            raw = envelope.to_xdr_bytes(), result.to_xdr_bytes(), meta.to_xdr_bytes()
            hashes[index] = tx_hash
        else:
            raw = maker.make(KINDS[index % len(KINDS)], rng)
        txs.append((tx_hash, *raw))
    return _ledger(meta_version, txs), hashes


@pytest.mark.parametrize("meta_version", [3, 4])
def test_a_mixed_ledger_decodes_only_the_watched_transactions(meta_version: int) -> None:
    watched_at = {3, 17, 42}
    data, hashes = _mixed_ledger(meta_version, watched_at)
    meta = parse_ledger(data, Watch(contracts=frozenset({WATCHED})))

    assert (meta.version, meta.transactions, meta.decoded) == (2 if meta_version == 4 else 1, 60, 3)
    assert meta.header.sequence == LEDGER and meta.header.hash_matches_header
    events = [(e.tx_index, e.op_index, e.event_index, e.tx_hash, scval.from_symbol(xdr.SCVal.from_xdr(e.topic[0])))
              for e in meta.events]
    assert events == [(i, 0, k, hashes[i], name) for i in sorted(watched_at)
                      for k, name in enumerate(("loan_created", "loan_repaid"))]
    loans = [c for c in meta.changes if "Loan" in str(xdr.LedgerKey.from_xdr(c.key).contract_data.key)]
    assert [c.tx_index for c in loans] == sorted(watched_at)
    assert all(c.change in ("created", "updated") for c in loans)
    assert all((c.before is None) == (c.change == "created") for c in loans)
    # The instance entry each invocation touched is a watched change too (state before, then updated).
    assert {c.change for c in meta.changes} - {"created", "updated"} == set()


def test_a_ledger_without_the_needles_decodes_nothing() -> None:
    data, _ = _mixed_ledger(4, set())
    meta = parse_ledger(data, Watch(contracts=frozenset({WATCHED})))
    assert (meta.transactions, meta.decoded, meta.events, meta.changes) == (60, 0, [], [])


def test_a_watched_key_needle_finds_its_write_only() -> None:
    data, hashes = _mixed_ledger(4, {5, 9})
    key = xdr.LedgerKey(xdr.LedgerEntryType.CONTRACT_DATA, contract_data=xdr.LedgerKeyContractData(
        scval.to_address(WATCHED).address, scval.to_vec([scval.to_symbol("Loan"), scval.to_uint64(9)]),
        xdr.ContractDataDurability.PERSISTENT)).to_xdr()
    meta = parse_ledger(data, Watch(keys=frozenset({key})))
    assert meta.decoded == 1 and [(c.key, c.tx_hash) for c in meta.changes] == [(key, hashes[9])]


@pytest.mark.parametrize("cut", [3, 50, 400, -7])
def test_truncated_or_foreign_bytes_raise_xdr_error(cut: int) -> None:
    data, _ = _mixed_ledger(4, {2})
    with pytest.raises(XdrError):
        parse_ledger(data[:cut], Watch(contracts=frozenset({WATCHED})))
    with pytest.raises(XdrError, match="version"):
        parse_ledger(b"\0\0\0\x07" + data[4:], Watch())
