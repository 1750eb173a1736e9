"""The devnet's ledger history over HTTP: real LedgerCloseMeta, a header hash chain, TTLs that
run out and entries archived the way a real RPC shows them, and a ledger retention longer than
the event retention (as an RPC serving ledgers from a data store)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import pytest
from stellar_sdk import SorobanServer, StrKey, scval, xdr
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.exceptions import SorobanRpcErrorResponse

from soroban_devnet.entries import contract_data_entry, contract_data_key, enum_key
from soroban_devnet.ledger import DEFAULT_EVICTION_DELAY, DEFAULT_PERSISTENT_TTL, DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

CONTRACT = StrKey.encode_contract(bytes([9] * 32))
TX = "ab" * 32


@pytest.fixture
def ledger() -> DevnetLedger:
    return DevnetLedger(ledger_close_seconds=math.inf)


@pytest.fixture
def rpc(ledger: DevnetLedger) -> Iterator[SorobanServer]:
    with DevnetServer(ledger) as devnet, SorobanServer(devnet.url, client=RequestsClient(num_retries=0)) as server:
        yield server


def _loan(loan_id: int, amount: int) -> tuple[xdr.LedgerKey, xdr.LedgerEntryData]:
    key = enum_key("Loan", scval.to_uint64(loan_id))
    return contract_data_key(CONTRACT, key), contract_data_entry(CONTRACT, key, scval.to_int128(amount))


def _meta(rpc: SorobanServer, sequence: int) -> xdr.LedgerCloseMeta:
    page = rpc.get_ledgers(start_ledger=sequence, limit=1)
    assert page.ledgers[0].sequence == sequence
    return xdr.LedgerCloseMeta.from_xdr(page.ledgers[0].metadata_xdr)


@pytest.mark.parametrize(("protocol", "version"), [(23, 2), (22, 1)])
def test_each_ledger_is_real_metadata_with_its_transactions(protocol: int, version: int) -> None:
    ledger = DevnetLedger(ledger_close_seconds=math.inf, protocol_version=protocol)
    key, data = _loan(1, 500)
    with ledger.transaction(tx_hash=TX):
        ledger.put_entry(key, data)
        ledger.add_event(contract_id=CONTRACT, topic=[scval.to_symbol("loan_created"), scval.to_uint64(1)],
                         value=scval.to_int128(500))
    created_in = ledger.latest_ledger
    ledger.close_ledger()
    ledger.put_entry(key, _loan(1, 400)[1])
    with DevnetServer(ledger) as devnet, SorobanServer(devnet.url, client=RequestsClient(num_retries=0)) as rpc:
        created, updated = _meta(rpc, created_in), _meta(rpc, created_in + 1)

    assert created.v == updated.v == version
    body = created.v2 if version == 2 else created.v1
    (processed,) = body.tx_processing
    assert processed.result.transaction_hash.hash.hex() == TX
    apply = processed.tx_apply_processing
    if version == 2:
        assert apply.v == 4
        changes, events = apply.v4.operations[0].changes.ledger_entry_changes, apply.v4.operations[0].events
    else:
        assert apply.v == 3
        changes, events = apply.v3.operations[0].changes.ledger_entry_changes, apply.v3.soroban_meta.events
    # The entry is created with its TTL entry; the event is the contract's.
    assert [c.type for c in changes] == [xdr.LedgerEntryChangeType.LEDGER_ENTRY_CREATED] * 2
    assert changes[0].created.data == data and changes[1].created.data.ttl.live_until_ledger_seq.uint32 == (
        created_in + DEFAULT_PERSISTENT_TTL)
    assert len(events) == 1 and scval.from_symbol(events[0].body.v0.topics[0]) == "loan_created"
    later = (updated.v2 if version == 2 else updated.v1).tx_processing[0].tx_apply_processing
    later_changes = (later.v4 if version == 2 else later.v3).operations[0].changes.ledger_entry_changes
    assert [c.type for c in later_changes] == [xdr.LedgerEntryChangeType.LEDGER_ENTRY_STATE,
                                               xdr.LedgerEntryChangeType.LEDGER_ENTRY_UPDATED]
    assert later_changes[0].state.data == data and later_changes[0].state.last_modified_ledger_seq.uint32 == created_in


def test_the_headers_form_a_hash_chain(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.close_ledger(30)
    page = rpc.get_ledgers(start_ledger=ledger.latest_ledger - 25, limit=20)
    entries = [xdr.LedgerHeaderHistoryEntry.from_xdr(info.header_xdr) for info in page.ledgers]
    for info, entry in zip(page.ledgers, entries, strict=True):
        assert entry.hash.hash.hex() == info.hash == hashlib.sha256(entry.header.to_xdr_bytes()).hexdigest()
        assert entry.header.ledger_seq.uint32 == info.sequence
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.header.previous_ledger_hash == before.hash
    assert rpc.get_latest_ledger().id == ledger.ledger_hash(ledger.latest_ledger)


def test_entries_expire_then_are_archived_and_restored() -> None:
    ledger = DevnetLedger(ledger_close_seconds=math.inf)
    key, data = _loan(2, 7)
    start = ledger.latest_ledger
    ledger.put_entry(key, data, live_until=start + 10)
    with DevnetServer(ledger) as devnet, SorobanServer(devnet.url, client=RequestsClient(num_retries=0)) as rpc:
        def live_until() -> int | None:
            (entry,) = rpc.get_ledger_entries([key]).entries
            return entry.live_until_ledger

        assert live_until() == start + 10
        ledger.close_ledger(11)
        assert live_until() == start + 10  # expired: still in the live state, behind the latest ledger
        ledger.close_ledger(DEFAULT_EVICTION_DELAY)
        assert live_until() == 0  # evicted to the hot archive: the RPC's placeholder
        evicted_in = start + 10 + DEFAULT_EVICTION_DELAY + 1
        evicted = _meta(rpc, evicted_in).v2.evicted_keys
        assert [k.to_xdr() for k in evicted][:1] == [key.to_xdr()] and evicted[1].type == xdr.LedgerEntryType.TTL

        ledger.extend_ttl(key.to_xdr(), ledger.latest_ledger + 1000)
        assert live_until() == ledger.latest_ledger + 1000
        restore = _meta(rpc, ledger.latest_ledger).v2.tx_processing[-1].tx_apply_processing.v4
        assert [c.type for c in restore.operations[0].changes.ledger_entry_changes] == [
            xdr.LedgerEntryChangeType.LEDGER_ENTRY_RESTORED] * 2


def test_getledgers_serves_past_the_event_window_and_names_its_own() -> None:
    ledger = DevnetLedger(ledger_close_seconds=math.inf, retention_window=100, ledger_retention_window=1_000)
    latest = ledger.latest_ledger
    with DevnetServer(ledger) as devnet, SorobanServer(devnet.url, client=RequestsClient(num_retries=0)) as rpc:
        page = rpc.get_ledgers(start_ledger=latest - 500, limit=2)
        assert [i.sequence for i in page.ledgers] == [latest - 500, latest - 499]
        assert page.oldest_ledger == latest - 99  # the local window, as a data-store-backed RPC reports it
        with pytest.raises(SorobanRpcErrorResponse, match="startLedger must be between the oldest ledger"):
            rpc.get_events(start_ledger=latest - 500, filters=[])
        with pytest.raises(SorobanRpcErrorResponse, match=f"oldest ledger: {latest - 999}"):
            rpc.get_ledgers(start_ledger=latest - 1_000, limit=1)


def test_faults_break_the_chain_leave_gaps_and_garble_metadata(ledger: DevnetLedger, rpc: SorobanServer) -> None:
    ledger.close_ledger(10)
    top = ledger.latest_ledger
    ledger.faults = FaultConfig(broken_ledgers=frozenset({top - 5}), missing_ledgers=frozenset({top - 3}),
                                garbled_ledgers=frozenset({top - 1}))
    page = rpc.get_ledgers(start_ledger=top - 6, limit=7)
    by_sequence = {i.sequence: i for i in page.ledgers}
    assert sorted(by_sequence) == [top - 6, top - 5, top - 4, top - 2, top - 1, top]
    broken = xdr.LedgerHeaderHistoryEntry.from_xdr(by_sequence[top - 5].header_xdr)
    assert broken.header.previous_ledger_hash.hash.hex() != by_sequence[top - 6].hash
    with pytest.raises(Exception):  # noqa: B017 - the SDK's parser raises several types on cut-short XDR
        xdr.LedgerCloseMeta.from_xdr(by_sequence[top - 1].metadata_xdr)
