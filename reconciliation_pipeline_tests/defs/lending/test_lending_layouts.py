"""The lending layouts (CONTRACTS.md §2): what the devnet seeds byte by byte is what the
SDK encodes, and the fast and reference decoders read it identically."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import StrKey, scval, xdr

from recon_demo.worlds.lending import event_topic_and_value, loan_entry, position_entry, reputation_entry
from reconciliation_pipeline.chain.keys import contract_data_key, enum_key
from reconciliation_pipeline.defs.lending.events import decode_event
from reconciliation_pipeline.defs.lending.spec import LOAN_LAYOUT, LOAN_STATUSES, POSITION_LAYOUT, REPUTATION_LAYOUT
from soroban_devnet.entries import contract_data_entry, unit_enum

I128 = st.integers(min_value=-(2**127), max_value=2**127 - 1)
ADDRESSES = st.one_of(st.binary(min_size=32, max_size=32).map(StrKey.encode_ed25519_public_key),
                      st.binary(min_size=32, max_size=32).map(StrKey.encode_contract))
CONTRACT = StrKey.encode_contract(bytes(range(32)))


def _sdk(key: xdr.SCVal, value: xdr.SCVal) -> tuple[str, str]:
    return contract_data_key(CONTRACT, key).to_xdr(), contract_data_entry(CONTRACT, key, value).to_xdr()


@settings(max_examples=60)
@given(loan_id=st.integers(min_value=0, max_value=2**64 - 1), borrower=ADDRESSES, principal=I128,
       outstanding=I128, status=st.sampled_from(LOAN_STATUSES))
def test_loan_entries_match_the_sdk_and_decode_both_ways(
    loan_id: int, borrower: str, principal: int, outstanding: int, status: str
) -> None:
    row: dict[str, Any] = {"loan_id": loan_id, "borrower": borrower, "principal": principal,
                           "outstanding": outstanding, "status": status.lower()}
    expected = _sdk(
        enum_key("Loan", scval.to_uint64(loan_id)),
        scval.to_struct({"borrower": scval.to_address(borrower), "principal": scval.to_int128(principal),
                         "outstanding": scval.to_int128(outstanding), "status": unit_enum(status)}),
    )
    assert loan_entry(CONTRACT, row) == expected
    decoded = LOAN_LAYOUT.decode(expected[1])
    assert decoded == LOAN_LAYOUT.decode_reference(expected[1]) == {k: v for k, v in row.items() if k != "loan_id"}


@settings(max_examples=40)
@given(provider=ADDRESSES, deposited=I128, shares=I128, score=st.integers(min_value=0, max_value=2**32 - 1))
def test_position_and_reputation_entries_match_the_sdk(provider: str, deposited: int, shares: int, score: int) -> None:
    position = _sdk(enum_key("Position", scval.to_address(provider)),
                    scval.to_struct({"deposited": scval.to_int128(deposited), "shares": scval.to_int128(shares)}))
    assert position_entry(CONTRACT, {"provider": provider, "deposited": deposited, "shares": shares}) == position
    assert POSITION_LAYOUT.decode(position[1]) == POSITION_LAYOUT.decode_reference(position[1]) == {
        "deposited": deposited, "shares": shares}
    reputation = _sdk(enum_key("Reputation", scval.to_address(provider)), scval.to_uint32(score))
    assert reputation_entry(CONTRACT, {"address": provider, "score": score}) == reputation
    assert REPUTATION_LAYOUT.decode(reputation[1]) == REPUTATION_LAYOUT.decode_reference(reputation[1]) == {
        "score": score}


class _Event:
    """Just the fields `decode_event` reads from the SDK's EventInfo."""

    def __init__(self, topic: list[xdr.SCVal], value: xdr.SCVal) -> None:
        self.id = "0000000000000000001-0000000000"
        self.ledger = 1
        self.ledger_close_at = datetime(2026, 11, 20, 12, tzinfo=UTC)
        self.contract_id = CONTRACT
        self.transaction_hash = "ab" * 32
        self.topic = [t.to_xdr() for t in topic]
        self.value = value.to_xdr()


@given(loan_id=st.integers(min_value=0, max_value=2**64 - 1), address=ADDRESSES, amount=I128,
       status=st.sampled_from(LOAN_STATUSES))
def test_every_lending_event_round_trips(loan_id: int, address: str, amount: int, status: str) -> None:
    rows = [
        {"event_type": "loan_created", "loan_id": loan_id, "address": address, "amount": amount, "loan_status": None},
        {"event_type": "loan_repaid", "loan_id": loan_id, "address": None, "amount": amount, "loan_status": None},
        {"event_type": "loan_closed", "loan_id": loan_id, "address": None, "amount": None,
         "loan_status": status.lower()},
        {"event_type": "deposit", "loan_id": None, "address": address, "amount": amount, "loan_status": None},
        {"event_type": "withdraw", "loan_id": None, "address": address, "amount": amount, "loan_status": None},
    ]
    for row in rows:
        decoded = decode_event(_Event(*event_topic_and_value(row)))  # type: ignore[arg-type]
        assert decoded["decode_error"] is None
        assert {k: decoded[k] for k in row} == row
        assert decoded["partition_key"] == "2026-11-20"
