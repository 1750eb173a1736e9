"""The decoders check what they skip, and a malformed entry is that entry's finding, never a crash.

Each case here is a payload an RPC (or a proxy, a bug, a hostile node) could answer with:
an entry naming another contract or key than the one requested, padding that is not zero,
an issuer key of an unknown type, a symbol that is not text, nesting deep enough to exhaust
the stack, an instance whose `Oracle` is not an address, a topic segment with trailing bytes.
"""

from __future__ import annotations

import base64
import struct

import pandas as pd
import pytest
from stellar_sdk import Asset, Keypair, StrKey, scval, xdr

from recon_demo.encode import stream_entry
from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.chain.decode import DecodeError
from reconciliation_pipeline.chain.reader import ChainReader, ReaderSettings
from reconciliation_pipeline.core.events import named_values
from reconciliation_pipeline.core.snapshots import READ_ERROR, READ_OK, read_entries
from reconciliation_pipeline.core.spec import KeyKind
from reconciliation_pipeline.defs.markets.rules import decode_market_instance
from reconciliation_pipeline.defs.streaks.spec import PLAYER
from reconciliation_pipeline.defs.streaks.sync import decode_player_profile, read_oracle
from reconciliation_pipeline.defs.streams.spec import STREAM
from soroban_devnet.entries import contract_data_entry, contract_data_key, enum_key, instance_key
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

CONTRACT = StrKey.encode_contract(bytes(range(32)))
OTHER_CONTRACT = StrKey.encode_contract(bytes(range(1, 33)))
PLAYER_ADDRESS = Keypair.from_raw_ed25519_seed(bytes(32)).public_key
STREAM_ROW = {"stream_id": 7, "sender": PLAYER_ADDRESS, "recipient": PLAYER_ADDRESS, "token": OTHER_CONTRACT,
              "total": 1_000, "released": 10, "status": "active"}


def _non_text_symbol(text: bytes) -> xdr.SCVal:
    return xdr.SCVal(xdr.SCValType.SCV_SYMBOL, sym=xdr.SCSymbol(text))


def _read_streams(devnet: DevnetServer, stream_ids: list[int], ledger_keys: list[str]) -> pd.DataFrame:
    reader = ChainReader(devnet.url, ReaderSettings(backoff_initial_s=0.01))
    try:
        frame, _ = read_entries(reader, STREAM, "stream_id", KeyKind.U64, pd.Series(stream_ids), pd.Series(ledger_keys))
    finally:
        reader.close()
    return frame.set_index("stream_id")


@pytest.mark.parametrize("answered_with", ["another contract", "another stream", "temporary durability"])
def test_an_entry_that_is_not_the_one_requested_is_an_error(
    ledger: DevnetLedger, devnet: DevnetServer, answered_with: str
) -> None:
    key, honest = stream_entry(CONTRACT, STREAM_ROW)
    other = {"another contract": OTHER_CONTRACT, "another stream": CONTRACT, "temporary durability": CONTRACT}
    _, planted = stream_entry(other[answered_with], {**STREAM_ROW, "stream_id": 8 if answered_with == "another stream" else 7})
    if answered_with == "temporary durability":
        data = xdr.LedgerEntryData.from_xdr(planted)
        data.contract_data.durability = xdr.ContractDataDurability.TEMPORARY
        planted = data.to_xdr()
    assert STREAM.layout.decode(planted) == STREAM.layout.decode(honest)  # what the value alone cannot tell
    honest_key, _ = stream_entry(CONTRACT, {**STREAM_ROW, "stream_id": 9})
    ledger.put_raw_entry(key, planted)
    ledger.put_raw_entry(honest_key, stream_entry(CONTRACT, {**STREAM_ROW, "stream_id": 9})[1])

    frame = _read_streams(devnet, [7, 9], [key, honest_key])

    assert frame.loc[7, "read_status"] == READ_ERROR
    assert "names another contract, key, durability or holder" in frame.loc[7, "read_error"]
    assert frame.loc[9, "read_status"] == READ_OK


def test_a_trustline_of_another_holder_is_an_error() -> None:
    issuer = Keypair.from_raw_ed25519_seed(bytes([2]) * 32).public_key
    holder, stranger = (Keypair.from_raw_ed25519_seed(bytes([n]) * 32).public_key for n in (3, 4))

    def trustline(account: str) -> str:
        return xdr.LedgerEntryData(
            type=xdr.LedgerEntryType.TRUSTLINE,
            trust_line=xdr.TrustLineEntry(
                account_id=Keypair.from_public_key(account).xdr_account_id(),
                asset=Asset("USDC", issuer).to_trust_line_asset_xdr_object(),
                balance=xdr.Int64(5), limit=xdr.Int64(10), flags=xdr.Uint32(1), ext=xdr.TrustLineEntryExt(0)),
        ).to_xdr()

    key = fastxdr.trustline_key(holder, "USDC", issuer)
    assert fastxdr.entry_key_mismatch(key, trustline(holder)) is None
    assert fastxdr.entry_key_mismatch(key, trustline(stranger)) is not None


def test_an_unknown_issuer_key_type_is_rejected() -> None:
    issuer = Keypair.from_raw_ed25519_seed(bytes([2]) * 32).public_key
    holder = Keypair.from_raw_ed25519_seed(bytes([3]) * 32).public_key
    raw = bytearray(base64.b64decode(xdr.LedgerEntryData(
        type=xdr.LedgerEntryType.TRUSTLINE,
        trust_line=xdr.TrustLineEntry(
            account_id=Keypair.from_public_key(holder).xdr_account_id(),
            asset=Asset("USDC", issuer).to_trust_line_asset_xdr_object(),
            balance=xdr.Int64(5), limit=xdr.Int64(10), flags=xdr.Uint32(1), ext=xdr.TrustLineEntryExt(0)),
    ).to_xdr()))
    # type(4) | account type(4) + key(32) | asset type(4) | code(4) | issuer key type(4) ...
    issuer_key_type_at = 4 + 36 + 4 + 4
    assert fastxdr.trustline_balance(base64.b64encode(raw).decode()) == 5
    raw[issuer_key_type_at + 3] = 1
    with pytest.raises(fastxdr.XdrError, match="issuer public key type"):
        fastxdr.trustline_balance(base64.b64encode(raw).decode())


def test_non_zero_padding_is_rejected() -> None:
    entry = contract_data_entry(CONTRACT, enum_key("Stream", scval.to_uint64(1)), scval.to_string("abc")).to_xdr()
    raw = bytearray(base64.b64decode(entry))
    assert fastxdr.contract_data_value(entry) == (fastxdr.SCV_STRING, "abc")
    raw[-1] = 0xFF  # the one padding byte after "abc"
    with pytest.raises(fastxdr.XdrError, match="padding"):
        fastxdr.contract_data_value(base64.b64encode(raw).decode())


def test_an_invalid_durability_is_rejected() -> None:
    entry = contract_data_entry(CONTRACT, enum_key("Stream", scval.to_uint64(1)), scval.to_uint32(1)).to_xdr()
    raw = bytearray(base64.b64decode(entry))
    # The durability is the u32 right before the value (tag 3, u32 1: eight bytes from the end).
    raw[-9] = 7
    with pytest.raises(fastxdr.XdrError, match="durability"):
        fastxdr.contract_data_value(base64.b64encode(raw).decode())


def test_deep_nesting_is_an_xdr_error_not_a_recursion_error() -> None:
    # Built by hand: the SDK's own encoder recurses too. Each level is `SCV_VEC, present, one item`.
    shallow = base64.b64decode(
        contract_data_entry(CONTRACT, enum_key("Stream", scval.to_uint64(1)), scval.to_uint32(1)).to_xdr())
    nesting = struct.pack(">III", fastxdr.SCV_VEC, 1, 1) * 100_000
    entry = base64.b64encode(shallow[:-8] + nesting + shallow[-8:]).decode()
    with pytest.raises(fastxdr.XdrError, match="nested deeper"):
        fastxdr.contract_data_value(entry)


def _player_entry(value: xdr.SCVal) -> tuple[str, str]:
    key = enum_key("Player", scval.to_address(PLAYER_ADDRESS))
    return (contract_data_key(CONTRACT, key).to_xdr(), contract_data_entry(CONTRACT, key, value).to_xdr())


def test_a_player_profile_with_a_non_text_symbol_is_a_read_error(ledger: DevnetLedger, devnet: DevnetServer) -> None:
    profile = xdr.SCVal(xdr.SCValType.SCV_MAP, map=xdr.SCMap([
        xdr.SCMapEntry(key=_non_text_symbol(b"current_\xffstreak"), val=scval.to_uint32(3)),
        xdr.SCMapEntry(key=scval.to_symbol("iq_level"), val=scval.to_uint32(100)),
    ]))
    key, data = _player_entry(profile)
    ledger.put_raw_entry(key, data)
    reader = ChainReader(devnet.url, ReaderSettings(backoff_initial_s=0.01))
    try:
        frame, _ = read_entries(reader, PLAYER, "player", KeyKind.ADDRESS, pd.Series([PLAYER_ADDRESS]), pd.Series([key]))
    finally:
        reader.close()
    assert frame.loc[0, "read_status"] == READ_ERROR
    assert frame.loc[0, "read_error"].startswith("undecodable entry")
    with pytest.raises(DecodeError, match="not ascii"):
        decode_player_profile(data)


def _instance(storage: list[xdr.SCMapEntry]) -> str:
    instance = xdr.SCVal(xdr.SCValType.SCV_CONTRACT_INSTANCE, instance=xdr.SCContractInstance(
        executable=xdr.ContractExecutable(xdr.ContractExecutableType.CONTRACT_EXECUTABLE_WASM,
                                          wasm_hash=xdr.Hash(bytes(32))),
        storage=xdr.SCMap(storage)))
    return contract_data_entry(CONTRACT, xdr.SCVal(xdr.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE), instance).to_xdr()


def test_a_market_instance_with_a_non_text_symbol_is_a_decode_error() -> None:
    entry = _instance([
        xdr.SCMapEntry(key=scval.to_symbol("Status"), val=scval.to_vec([scval.to_symbol("Open")])),
        xdr.SCMapEntry(key=_non_text_symbol(b"\xc3\x28"), val=scval.to_uint32(1)),
    ])
    with pytest.raises(DecodeError, match="not text"):
        decode_market_instance(entry)


@pytest.mark.parametrize("oracle_value", [scval.to_uint32(5), scval.to_symbol("nobody")])
def test_an_oracle_that_is_not_an_address_is_a_problem_not_a_crash(
    ledger: DevnetLedger, devnet: DevnetServer, oracle_value: xdr.SCVal
) -> None:
    ledger.put_raw_entry(instance_key(CONTRACT), _instance([xdr.SCMapEntry(key=scval.to_symbol("Oracle"),
                                                                           val=oracle_value)]))
    reader = ChainReader(devnet.url, ReaderSettings(backoff_initial_s=0.01))
    try:
        read = read_oracle(reader, CONTRACT)
    finally:
        reader.close()
    assert read.address is None
    assert read.problem is not None and "not an address" in read.problem


def test_a_topic_segment_with_trailing_bytes_is_unreadable_not_another_address() -> None:
    from stellar_sdk.soroban_rpc import EventInfo

    holder = Keypair.from_raw_ed25519_seed(bytes([9]) * 32).public_key
    segment = base64.b64decode(scval.to_address(holder).to_xdr())
    padded = base64.b64encode(segment + bytes(4)).decode()

    def event(address_segment: str, event_id: str) -> EventInfo:
        return EventInfo.model_validate({
            "type": "contract", "ledger": 10, "ledgerClosedAt": "2026-12-01T00:00:00Z", "contractId": CONTRACT,
            "id": event_id, "operationIndex": 0, "transactionIndex": 0, "txHash": "00" * 32,
            "inSuccessfulContractCall": True, "topic": [scval.to_symbol("transfer").to_xdr(), address_segment],
            "value": scval.to_int128(1).to_xdr(),
        })

    named = named_values([event(scval.to_address(holder).to_xdr(), "1"), event(padded, "2")], KeyKind.ADDRESS, None)
    assert holder in named.values
    assert named.unreadable == ("2",)
