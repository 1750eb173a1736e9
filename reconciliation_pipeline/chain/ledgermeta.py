"""Reading `LedgerCloseMeta` (what `getLedgers` serves as `metadataXdr`) without decoding it whole.

A busy ledger holds hundreds of transactions; a reconciliation cares about the
few that touch its contracts. `stellar_sdk.xdr` builds a Python object per XDR
node (milliseconds per transaction), so this module walks the bytes instead:

- every XDR field is a multiple of 4 bytes, so a ledger is read as an array of
  big-endian 32-bit words (one C conversion), and a position is a word index;
- the ledger header is read field by field (sequence, close time, its hash and
  the previous ledger's, and whether its hash really is the SHA-256 of the header);
- the transaction set and every `TransactionResultMeta` are *skipped*: a skipper
  per XDR type advances a position without building anything, hot types by hand
  (payments, offers, path payments, Soroban invocations, their results and entry
  changes), rarer arms through the SDK's own unpacker (same bytes, slower);
- a transaction whose bytes contain none of the watched needles (the 32 raw bytes
  of a watched contract, a watched key's bytes) is never decoded; from the few that
  do, the watched contract events and entry changes are read off their bytes (each
  topic, value and entry as the base64 of its XDR), without building objects.

LedgerCloseMeta v1 and v2 (protocol 23) and TransactionMeta v3 and v4 are read;
anything else raises `XdrError`, which the replay records as a finding.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from array import array
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from stellar_sdk import StrKey, xdr
from xdrlib3 import Unpacker

from reconciliation_pipeline.chain.fastxdr import XdrError

_NEGATIVE = 1 << 32
"""A word holding an int32 code c < 0 reads as c + 2**32."""


class Words(array):
    """A ledger's bytes as big-endian 32-bit words; `raw` keeps the bytes (for slices and the SDK)."""

    raw: bytes


def words(data: bytes) -> Words:
    if len(data) % 4:
        raise XdrError(f"{len(data)} bytes is not a whole number of XDR words")
    w = Words("I")
    assert w.itemsize == 4
    w.frombytes(data)
    if sys.byteorder == "little":
        w.byteswap()
    w.raw = data
    return w


Skip = Callable[[Words, int], int]


def _sdk(cls: Any) -> Skip:
    """Skip one value of an XDR type with the SDK's unpacker: every arm, at the SDK's speed."""

    def skip(w: Words, i: int) -> int:
        unpacker = Unpacker(w.raw)
        unpacker.set_position(4 * i)
        cls.unpack(unpacker)
        position = unpacker.get_position()
        if position % 4:
            raise XdrError("an XDR value ended off a word boundary")
        return position // 4

    return skip


def _opaque(w: Words, i: int) -> int:
    """Variable-length opaque or string: a length in bytes, the bytes padded to a word."""
    return i + 1 + ((w[i] + 3) >> 2)


def _optional(w: Words, i: int, skip: Skip) -> int:
    return skip(w, i + 1) if w[i] else i + 1


def _array(w: Words, i: int, skip: Skip) -> int:
    n = w[i]
    i += 1
    for _ in range(n):
        i = skip(w, i)
    return i


# -- small shapes ------------------------------------------------------------------------

def _account_id(w: Words, i: int) -> int:
    if w[i]:  # PUBLIC_KEY_TYPE_ED25519 is the only key type
        raise XdrError(f"unsupported public key type {w[i]}")
    return i + 9


_MUXED = {0: 9, 0x100: 11}
_ASSET = {0: 1, 1: 11, 2: 13}
_TRUSTLINE_ASSET = {0: 1, 1: 11, 2: 13, 3: 9}
_SC_ADDRESS = {0: 10, 1: 9, 2: 11, 3: 10, 4: 9}


def _muxed_account(w: Words, i: int) -> int:
    width = _MUXED.get(w[i])
    if width is None:
        raise XdrError(f"unsupported MuxedAccount type {w[i]}")
    return i + width


def _asset(w: Words, i: int) -> int:
    width = _ASSET.get(w[i])
    if width is None:
        raise XdrError(f"unsupported Asset type {w[i]}")
    return i + width


def _trustline_asset(w: Words, i: int) -> int:
    width = _TRUSTLINE_ASSET.get(w[i])
    if width is None:
        raise XdrError(f"unsupported TrustLineAsset type {w[i]}")
    return i + width


_sdk_sc_address = _sdk(xdr.SCAddress)


def _sc_address(w: Words, i: int) -> int:
    width = _SC_ADDRESS.get(w[i])
    return i + width if width is not None else _sdk_sc_address(w, i)


# ScVal arms of fixed width in words (type tag included): bool, void, error, u32, i32, u64, i64, timepoint,
# duration, u128, i128, u256, i256, the instance key and a nonce key.
_SCVAL_FIXED = {0: 2, 1: 1, 2: 3, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 3, 9: 5, 10: 5, 11: 9, 12: 9, 20: 1, 21: 3}
_sdk_scval = _sdk(xdr.SCVal)


def _scvals(w: Words, i: int, n: int, _fixed: dict[int, int] = _SCVAL_FIXED) -> int:
    """Skip `n` ScVals from word `i`; leaves inline (most values are numbers, symbols, addresses)."""
    for _ in range(n):
        kind = w[i]
        width = _fixed.get(kind)
        if width is not None:
            i += width
        elif kind == 15 or kind == 14 or kind == 13:  # symbol, string, bytes
            i += 2 + ((w[i + 1] + 3) >> 2)
        elif kind == 18 and w[i + 1] in _SC_ADDRESS:
            i += 1 + _SC_ADDRESS[w[i + 1]]
        else:
            i = _scval(w, i)
    return i


def _scval(w: Words, i: int, _fixed: dict[int, int] = _SCVAL_FIXED) -> int:
    kind = w[i]
    width = _fixed.get(kind)
    if width is not None:
        return i + width
    if kind in (13, 14, 15):  # bytes, string, symbol
        return i + 2 + ((w[i + 1] + 3) >> 2)
    if kind == 16:  # vec
        return _scvals(w, i + 3, w[i + 2]) if w[i + 1] else i + 2
    if kind == 17:  # map: key, value pairs
        return _scvals(w, i + 3, 2 * w[i + 2]) if w[i + 1] else i + 2
    if kind == 18:
        width = _SC_ADDRESS.get(w[i + 1])
        return i + 1 + width if width is not None else _sdk_scval(w, i)
    if kind == 19:  # a contract instance: its executable (a wasm hash, or the asset contract), its storage
        executable = w[i + 1]
        if executable == 0:
            i += 10
        elif executable == 1:
            i += 2
        else:
            return _sdk_scval(w, i)
        return _scvals(w, i + 2, 2 * w[i + 1]) if w[i] else i + 1
    return _sdk_scval(w, i)


_sdk_ledger_key = _sdk(xdr.LedgerKey)


def _ledger_key(w: Words, i: int) -> int:
    kind = w[i]
    if kind == 6:  # contract data: address, key, durability
        return _scval(w, _sc_address(w, i + 1)) + 1
    if kind == 1:
        return _trustline_asset(w, _account_id(w, i + 1))
    if kind == 0:
        return _account_id(w, i + 1)
    if kind in (5, 7, 9):  # liquidity pool, contract code, TTL: a hash
        return i + 9
    if kind == 2:
        return _account_id(w, i + 1) + 2
    return _sdk_ledger_key(w, i)


# -- transactions ------------------------------------------------------------------------

def _invoke_contract_args(w: Words, i: int) -> int:
    i = _opaque(w, _sc_address(w, i))  # contract, function name, arguments
    return _scvals(w, i + 1, w[i])


_sdk_host_function = _sdk(xdr.HostFunction)
_sdk_credentials = _sdk(xdr.SorobanCredentials)
_sdk_authorized_function = _sdk(xdr.SorobanAuthorizedFunction)


def _authorized_invocation(w: Words, i: int) -> int:
    i = _invoke_contract_args(w, i + 1) if w[i] == 0 else _sdk_authorized_function(w, i)
    n = w[i]
    i += 1
    for _ in range(n):
        i = _authorized_invocation(w, i)
    return i


def _authorization_entry(w: Words, i: int) -> int:
    kind = w[i]
    if kind == 0:
        i += 1
    elif kind == 1:  # address credentials: address, nonce, expiration, signature
        i = _scval(w, _sc_address(w, i + 1) + 3)
    else:
        i = _sdk_credentials(w, i)
    return _authorized_invocation(w, i)


def _op_invoke(w: Words, i: int) -> int:
    kind = w[i]
    if kind == 0:
        i = _invoke_contract_args(w, i + 1)
    elif kind == 2:  # upload wasm
        i = _opaque(w, i + 1)
    else:
        i = _sdk_host_function(w, i)
    n = w[i]
    i += 1
    for _ in range(n):
        i = _authorization_entry(w, i)
    return i


def _op_payment(w: Words, i: int) -> int:
    return _asset(w, _muxed_account(w, i)) + 2


def _op_path_payment(w: Words, i: int) -> int:
    # send asset, send amount, destination, destination asset, destination amount, path
    i = _asset(w, _muxed_account(w, _asset(w, i) + 2)) + 2
    n = w[i]
    i += 1
    for _ in range(n):
        i = _asset(w, i)
    return i


def _op_offer(w: Words, i: int) -> int:
    return _asset(w, _asset(w, i)) + 6  # selling, buying, amount, price (n, d), offer id


def _op_passive_offer(w: Words, i: int) -> int:
    return _asset(w, _asset(w, i)) + 4


_sdk_change_trust = _sdk(xdr.ChangeTrustOp)


def _op_change_trust(w: Words, i: int) -> int:
    if w[i] == 3:  # pool share: the pool's parameters
        return _sdk_change_trust(w, i)
    return _asset(w, i) + 2


_OP_BODY: dict[int, Skip] = {
    0: lambda w, i: _account_id(w, i) + 2,  # create account
    1: _op_payment,
    2: _op_path_payment,
    3: _op_offer,
    4: _op_passive_offer,
    6: _op_change_trust,
    8: _muxed_account,  # account merge
    9: lambda w, i: i,  # inflation
    11: lambda w, i: i + 2,  # bump sequence
    12: _op_offer,
    13: _op_path_payment,
    24: _op_invoke,
    25: lambda w, i: i + 2,  # extend footprint TTL: extension point, extend to
    26: lambda w, i: i + 1,  # restore footprint: extension point
}
_sdk_operation = _sdk(xdr.Operation)
_sdk_preconditions = _sdk(xdr.Preconditions)
_sdk_memo = _sdk(xdr.Memo)
_MEMO = {0: 1, 2: 3, 3: 9, 4: 9}


def _transaction_v1(w: Words, i: int) -> int:
    i = _muxed_account(w, i) + 3  # source, fee, sequence
    kind = w[i]  # preconditions
    i = i + 1 if kind == 0 else i + 5 if kind == 1 else _sdk_preconditions(w, i)
    kind = w[i]  # memo
    width = _MEMO.get(kind)
    i = i + width if width is not None else _opaque(w, i + 1) if kind == 1 else _sdk_memo(w, i)
    n = w[i]
    i += 1
    for _ in range(n):
        start = i
        i = _muxed_account(w, i + 1) if w[i] else i + 1  # the operation's own source, if any
        skip = _OP_BODY.get(w[i])
        i = skip(w, i + 1) if skip is not None else _sdk_operation(w, start)
    ext = w[i]
    if ext == 0:
        return i + 1
    if ext != 1:
        raise XdrError(f"unsupported Transaction extension {ext}")
    i += 1  # SorobanTransactionData: extension, read-only and read-write footprints, resources, fee
    ext = w[i]
    if ext == 1:
        i = i + 2 + w[i + 1]  # archived entries' indexes
    elif ext != 0:
        raise XdrError(f"unsupported SorobanTransactionData extension {ext}")
    else:
        i += 1
    for _ in range(2):
        n = w[i]
        i += 1
        for _ in range(n):
            i = _ledger_key(w, i)
    return i + 3 + 2


def _signatures(w: Words, i: int) -> int:
    n = w[i]
    i += 1
    for _ in range(n):
        i = i + 2 + ((w[i + 1] + 3) >> 2)  # hint, signature
    return i


def _transaction_v0(w: Words, i: int) -> int:
    i += 8 + 1 + 2  # source key, fee, sequence
    i = i + 5 if w[i] else i + 1  # time bounds
    kind = w[i]
    width = _MEMO.get(kind)
    i = i + width if width is not None else _opaque(w, i + 1) if kind == 1 else _sdk_memo(w, i)
    n = w[i]
    i += 1
    for _ in range(n):
        start = i
        i = _muxed_account(w, i + 1) if w[i] else i + 1
        skip = _OP_BODY.get(w[i])
        i = skip(w, i + 1) if skip is not None else _sdk_operation(w, start)
    return i + 1


def _envelope(w: Words, i: int) -> int:
    kind = w[i]
    if kind == 2:
        return _signatures(w, _transaction_v1(w, i + 1))
    if kind == 5:  # fee bump: fee source, fee, inner v1 envelope, extension, signatures
        i = _muxed_account(w, i + 1) + 2
        if w[i] != 2:
            raise XdrError(f"unsupported fee-bump inner envelope type {w[i]}")
        return _signatures(w, _signatures(w, _transaction_v1(w, i + 1)) + 1)
    if kind == 0:
        return _signatures(w, _transaction_v0(w, i + 1))
    raise XdrError(f"unsupported TransactionEnvelope type {kind}")


def _envelopes(w: Words, i: int) -> int:
    n = w[i]
    i += 1
    for _ in range(n):
        i = _envelope(w, i)
    return i


def _generalized_tx_set(w: Words, i: int) -> int:
    if w[i] != 1:
        raise XdrError(f"unsupported GeneralizedTransactionSet version {w[i]}")
    phases = w[i + 9]  # after the previous ledger hash
    i += 10
    for _ in range(phases):
        version = w[i]
        if version == 0:
            components = w[i + 1]
            i += 2
            for _ in range(components):
                if w[i]:
                    raise XdrError(f"unsupported TxSetComponent type {w[i]}")
                i = _envelopes(w, i + 4 if w[i + 1] else i + 2)  # an optional base fee, then the envelopes
        elif version == 1:  # parallel Soroban phase: base fee, stages of clusters of envelopes
            i = i + 4 if w[i + 1] else i + 2
            stages = w[i]
            i += 1
            for _ in range(stages):
                clusters = w[i]
                i += 1
                for _ in range(clusters):
                    i = _envelopes(w, i)
        else:
            raise XdrError(f"unsupported TransactionPhase version {version}")
    return i


# -- results -----------------------------------------------------------------------------

def _claim_atom(w: Words, i: int) -> int:
    kind = w[i]
    if kind == 1:  # order book: seller, offer id, sold, amount, bought, amount
        return _asset(w, _asset(w, _account_id(w, i + 1) + 2) + 2) + 2
    if kind == 2:  # liquidity pool: pool id, sold, amount, bought, amount
        return _asset(w, _asset(w, i + 9) + 2) + 2
    if kind == 0:  # v0: seller key, offer id, ...
        return _asset(w, _asset(w, i + 11) + 2) + 2
    raise XdrError(f"unsupported ClaimAtom type {kind}")


def _claim_atoms(w: Words, i: int) -> int:
    n = w[i]
    i += 1
    for _ in range(n):
        i = _claim_atom(w, i)
    return i


def _offer_entry(w: Words, i: int) -> int:
    i = _asset(w, _asset(w, _account_id(w, i) + 2)) + 5  # amount, price, flags
    if w[i]:
        raise XdrError("unsupported OfferEntry extension")
    return i + 1


def _result_path_payment(w: Words, i: int) -> int:
    code = w[i]
    if code == 0:  # offers claimed, then the last payment: destination, asset, amount
        return _asset(w, _account_id(w, _claim_atoms(w, i + 1))) + 2
    if code == _NEGATIVE - 9:  # no issuer: the asset
        return _asset(w, i + 1)
    return i + 1


def _result_offer(w: Words, i: int) -> int:
    if w[i]:
        return i + 1
    i = _claim_atoms(w, i + 1)
    return _offer_entry(w, i + 1) if w[i] in (0, 1) else i + 1


_OP_RESULT: dict[int, Skip] = {
    0: lambda w, i: i + 1, 1: lambda w, i: i + 1, 2: _result_path_payment, 3: _result_offer, 4: _result_offer,
    6: lambda w, i: i + 1, 8: lambda w, i: i + 3 if w[i] == 0 else i + 1, 11: lambda w, i: i + 1, 12: _result_offer,
    13: _result_path_payment, 24: lambda w, i: i + 9 if w[i] == 0 else i + 1, 25: lambda w, i: i + 1,
    26: lambda w, i: i + 1,
}
_sdk_operation_result = _sdk(xdr.OperationResult)


def _operation_results(w: Words, i: int) -> int:
    n = w[i]
    i += 1
    for _ in range(n):
        if w[i]:  # opBAD_AUTH and the other outer codes carry nothing
            i += 1
            continue
        skip = _OP_RESULT.get(w[i + 1])
        i = skip(w, i + 2) if skip is not None else _sdk_operation_result(w, i)
    return i


def _transaction_result(w: Words, i: int) -> int:
    code = w[i + 2]  # after the fee charged
    i += 3
    if code in (0, _NEGATIVE - 1):
        i = _operation_results(w, i)
    elif code in (1, _NEGATIVE - 13):  # fee bump: inner hash, and the inner result (fee, code, results, ext)
        inner = w[i + 10]
        i += 11
        if inner in (0, _NEGATIVE - 1):
            i = _operation_results(w, i)
        i += 1
    if w[i]:
        raise XdrError("unsupported TransactionResult extension")
    return i + 1


# -- ledger entries and their changes ---------------------------------------------------------

def _account_entry(w: Words, i: int) -> int:
    i = _account_id(w, i) + 5  # account, balance, sequence, sub-entries
    i = i + 10 if w[i] else i + 1  # inflation destination
    i = i + 2 + ((w[i + 1] + 3) >> 2) + 1  # flags, home domain, thresholds
    n = w[i]
    i += 1
    for _ in range(n):  # signers: a key and a weight
        kind = w[i]
        if kind <= 2:
            i += 10
        elif kind == 3:
            i = i + 10 + ((w[i + 9] + 3) >> 2) + 1
        else:
            raise XdrError(f"unsupported SignerKey type {kind}")
    ext = w[i]
    if ext == 0:
        return i + 1
    if ext != 1:
        raise XdrError(f"unsupported AccountEntry extension {ext}")
    ext = w[i + 5]  # after the liabilities
    i += 6
    if ext == 0:
        return i
    if ext != 2:
        raise XdrError(f"unsupported AccountEntryExtensionV1 extension {ext}")
    n = w[i + 2]  # after the sponsored and sponsoring counts: one optional sponsor per signer
    i += 3
    for _ in range(n):
        i = i + 10 if w[i] else i + 1
    ext = w[i]
    if ext == 0:
        return i + 1
    if ext != 3:
        raise XdrError(f"unsupported AccountEntryExtensionV2 extension {ext}")
    return i + 1 + 1 + 1 + 2  # extension point, sequence ledger, sequence time


def _trustline_entry(w: Words, i: int) -> int:
    i = _trustline_asset(w, _account_id(w, i)) + 5  # balance, limit, flags
    ext = w[i]
    if ext == 0:
        return i + 1
    if ext != 1:
        raise XdrError(f"unsupported TrustLineEntry extension {ext}")
    ext = w[i + 5]
    return i + 6 if ext == 0 else i + 8  # liabilities, then the v2 pool use count and its extension


def _contract_data_entry(w: Words, i: int) -> int:
    return _scval(w, _scvals(w, _sc_address(w, i + 1), 1) + 1)


def _contract_code_entry(w: Words, i: int) -> int:
    i += 1 + (12 if w[i] == 1 else 0)  # extension point and ten cost inputs
    return _opaque(w, i + 8)


def _liquidity_pool_entry(w: Words, i: int) -> int:
    if w[i + 8]:
        raise XdrError("unsupported LiquidityPool type")
    return _asset(w, _asset(w, i + 9)) + 1 + 8


_ENTRY_DATA: dict[int, Skip] = {
    0: _account_entry, 1: _trustline_entry, 2: _offer_entry, 5: _liquidity_pool_entry, 6: _contract_data_entry,
    7: _contract_code_entry, 9: lambda w, i: i + 9,
}
_sdk_ledger_entry = _sdk(xdr.LedgerEntry)


def _changes(w: Words, i: int) -> int:
    n = w[i]
    i += 1
    entry_data = _ENTRY_DATA
    for _ in range(n):
        kind = w[i]
        if kind == 2:  # removed: a key
            i = _ledger_key(w, i + 1)
            continue
        if kind > 4:
            raise XdrError(f"unsupported LedgerEntryChange type {kind}")
        skip = entry_data.get(w[i + 2])  # after the change type and the last-modified ledger
        if skip is None:
            i = _sdk_ledger_entry(w, i + 1)
            continue
        i = skip(w, i + 3)
        i = i + 1 if w[i] == 0 else (i + 11 if w[i + 1] else i + 2) + 1  # extension: an optional sponsor
    return i


# -- transaction meta --------------------------------------------------------------------

def _contract_event(w: Words, i: int) -> int:
    # extension, an optional contract id, type, body version 0: topics and data
    i += 10 if w[i + 1] else 2
    if w[i + 1]:
        raise XdrError("unsupported ContractEvent body")
    return _scvals(w, i + 3, w[i + 2] + 1)


def _events(w: Words, i: int, skip: Skip = _contract_event) -> int:
    n = w[i]
    i += 1
    for _ in range(n):
        i = skip(w, i)
    return i


def _soroban_meta_ext(w: Words, i: int) -> int:
    ext = w[i]
    if ext == 0:
        return i + 1
    if ext == 1:  # extension point and three fees
        return i + 1 + 1 + 6
    raise XdrError(f"unsupported SorobanTransactionMeta extension {ext}")


_sdk_transaction_meta = _sdk(xdr.TransactionMeta)


def _diagnostic_event(w: Words, i: int) -> int:
    return _contract_event(w, i + 1)


def _transaction_event(w: Words, i: int) -> int:
    return _contract_event(w, i + 1)


def _transaction_meta(w: Words, i: int) -> int:
    version = w[i]
    if version == 3:
        i = _changes(w, i + 2)
        n = w[i]
        i += 1
        for _ in range(n):  # each OperationMeta is its changes
            i = _changes(w, i)
        i = _changes(w, i)
        if not w[i]:
            return i + 1
        i = _events(w, _soroban_meta_ext(w, i + 1))  # events, return value, diagnostic events
        return _events(w, _scval(w, i), _diagnostic_event)
    if version == 4:
        i = _changes(w, i + 2)
        n = w[i]
        i += 1
        for _ in range(n):  # OperationMetaV2: extension, changes, events
            i = _events(w, _changes(w, i + 1))
        i = _changes(w, i)
        if w[i]:
            i = _soroban_meta_ext(w, i + 1)
            i = _scval(w, i + 1) if w[i] else i + 1  # an optional return value
        else:
            i += 1
        return _events(w, _events(w, i, _transaction_event), _diagnostic_event)
    return _sdk_transaction_meta(w, i)


def _result_meta_v0(w: Words, i: int) -> int:
    """`TransactionResultMeta` (LedgerCloseMeta v1): result pair, fee changes, apply meta."""
    return _transaction_meta(w, _changes(w, _transaction_result(w, i + 8)))


def _result_meta_v1(w: Words, i: int) -> int:
    """`TransactionResultMetaV1` (v2): extension, result pair, fee changes, apply meta, post-apply fee changes."""
    if w[i]:
        raise XdrError("unsupported TransactionResultMetaV1 extension")
    return _changes(w, _transaction_meta(w, _changes(w, _transaction_result(w, i + 9))))


def skipped(skip: Skip, data: bytes) -> int:
    """Bytes one value of the skipper's type occupies at the start of `data` (for tests)."""
    return 4 * skip(words(data), 0)


# -- the ledger --------------------------------------------------------------------------

@dataclass(frozen=True)
class LedgerHeader:
    sequence: int
    close_time: int
    """Unix seconds."""
    hash: str
    """Hex of the hash `LedgerHeaderHistoryEntry` carries."""
    previous_hash: str
    hash_matches_header: bool
    """Whether `hash` is the SHA-256 of the header's XDR, as it must be."""


@dataclass(frozen=True)
class MetaEvent:
    """A contract event, with the position the RPC builds its event id from."""

    tx_index: int
    """1-based, in application order."""
    op_index: int
    event_index: int
    """Within its operation."""
    tx_hash: str
    contract_id: str
    event_type: str
    """`contract` or `system`."""
    topic: tuple[str, ...]
    value: str
    successful: bool


@dataclass(frozen=True)
class EntryChange:
    """One ledger entry change of a transaction, with the entry's state before it."""

    tx_index: int
    op_index: int | None
    """None for the transaction-level changes around its operations."""
    tx_hash: str
    change: str
    """`created`, `updated`, `removed` or `restored`."""
    key: str
    """Base64 `LedgerKey`."""
    entry: str | None
    """Base64 `LedgerEntryData` after the change (None when removed)."""
    before: str | None
    """Base64 `LedgerEntryData` before it (None when created)."""


@dataclass(frozen=True)
class Watch:
    """What a reader wants from each ledger: events and entry changes of these contracts, and
    changes of these ledger keys (base64). Transactions touching neither are skipped."""

    contracts: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()

    def needles(self) -> tuple[bytes, ...]:
        """What a watched transaction's bytes must contain: a contract id's 32 bytes, or a watched key's
        bytes as its entry holds them."""
        found = {StrKey.decode_contract(c) for c in self.contracts}
        # A key without its type tag is contiguous in its entry (contract data: contract, key and
        # durability; a trustline: account and asset; an account: its id).
        found |= {base64.b64decode(key)[4:] for key in self.keys}
        return tuple(found)


@dataclass
class LedgerMeta:
    header: LedgerHeader
    version: int
    transactions: int
    decoded: int
    """Transactions decoded because their bytes held a watched needle."""
    events: list[MetaEvent] = field(default_factory=list)
    changes: list[EntryChange] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    """Base64 keys the ledger evicted to the archive (entries and their TTLs)."""


def _header(w: Words, i: int) -> tuple[LedgerHeader, int]:
    """`LedgerHeaderHistoryEntry` at word `i`: the header read, and the position after the entry."""
    raw = w.raw
    start = i + 8
    q = start + 1 + 8 + 8 + 2  # version, previous hash, tx set hash, close time
    close_time = (w[q - 2] << 32) | w[q - 1]
    q = _array(w, q, _opaque)  # upgrades
    value_type = w[q]
    if value_type == 1:  # signed: node id, signature
        q = _opaque(w, _account_id(w, q + 1))
    elif value_type == 0:
        q += 1
    else:
        raise XdrError(f"unsupported StellarValue type {value_type}")
    q += 16  # transaction set result hash, bucket list hash
    sequence = w[q]
    q += 1 + 2 + 2 + 1 + 2 + 1 + 1 + 1 + 32
    ext = w[q]
    if ext not in (0, 1):
        raise XdrError(f"unsupported LedgerHeader extension {ext}")
    q += 1 + (2 if ext == 1 else 0)
    entry_hash = raw[4 * i:4 * start]
    header = LedgerHeader(sequence=sequence, close_time=close_time, hash=entry_hash.hex(),
                          previous_hash=raw[4 * start + 4:4 * start + 36].hex(),
                          hash_matches_header=hashlib.sha256(raw[4 * start:4 * q]).digest() == entry_hash)
    if w[q]:
        raise XdrError("unsupported LedgerHeaderHistoryEntry extension")
    return header, q + 1


def _meta_header(w: Words) -> tuple[int, LedgerHeader, int]:
    version = w[0]
    if version not in (1, 2):
        raise XdrError(f"unsupported LedgerCloseMeta version {version} (v1 and v2 are read)")
    ext = w[1]
    if ext not in (0, 1):
        raise XdrError(f"unsupported LedgerCloseMeta extension {ext}")
    header, i = _header(w, 2 + (3 if ext == 1 else 0))
    return version, header, i


_CHANGE_NAMES = {0: "created", 1: "updated", 2: "removed", 4: "restored"}
_STATE = 3


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class _Wanted:
    """A watch in the form the byte-level extraction compares: raw contract ids, base64 keys."""

    contracts: frozenset[bytes]
    keys: frozenset[str]

    @classmethod
    def of(cls, watch: Watch) -> _Wanted:
        return cls(frozenset(StrKey.decode_contract(c) for c in watch.contracts), watch.keys)


def _entry_key(w: Words, data: int) -> bytes | None:
    """The `LedgerKey` of the `LedgerEntryData` at word `data`, for the kinds a reconciliation reads
    (contract data, trustlines, accounts); None for the others."""
    raw = w.raw
    kind = w[data]
    if kind == 6:  # type, then ContractDataEntry's extension, contract, key, durability
        end = _scval(w, _sc_address(w, data + 2)) + 1
        return raw[4 * data:4 * data + 4] + raw[4 * data + 8:4 * end]
    if kind == 1:
        return raw[4 * data:4 * _trustline_asset(w, _account_id(w, data + 1))]
    if kind == 0:
        return raw[4 * data:4 * data + 40]
    return None


def _watched_key(key: bytes, wanted: _Wanted) -> str | None:
    """The key as base64 if it is watched: contract data of a watched contract, or a watched key."""
    if key[:8] == b"\0\0\0\6\0\0\0\1" and key[8:40] in wanted.contracts:
        return _b64(key)
    encoded = _b64(key)
    return encoded if encoded in wanted.keys else None


def _capture_changes(w: Words, i: int, wanted: _Wanted, tx_index: int, op_index: int | None, tx_hash: str,
                     found: list[EntryChange]) -> int:
    """Skip `LedgerEntryChanges` at `i`, keeping the watched keys' changes, each with the `STATE` that
    preceded it as its state before; returns the position after."""
    raw = w.raw
    n = w[i]
    i += 1
    state: dict[str, str | None] = {}
    for _ in range(n):
        kind = w[i]
        data: str | None = None
        if kind == 2:
            end = _ledger_key(w, i + 1)
            key = _watched_key(raw[4 * i + 4:4 * end], wanted)
        elif kind <= 4:
            data_start = i + 2  # after the change type and the entry's last-modified ledger
            skip = _ENTRY_DATA.get(w[data_start])
            if skip is None:
                end, key = _sdk_ledger_entry(w, i + 1), None
            else:
                data_end = skip(w, data_start + 1)
                end = data_end + 1 if w[data_end] == 0 else (data_end + 11 if w[data_end + 1] else data_end + 2) + 1
                raw_key = _entry_key(w, data_start)
                key = _watched_key(raw_key, wanted) if raw_key is not None else None
                if key is not None:
                    data = _b64(raw[4 * data_start:4 * data_end])
        else:
            raise XdrError(f"unsupported LedgerEntryChange type {kind}")
        i = end
        if key is None:
            continue
        if kind == _STATE:
            state[key] = data
            continue
        found.append(EntryChange(tx_index=tx_index, op_index=op_index, tx_hash=tx_hash, change=_CHANGE_NAMES[kind],
                                 key=key, entry=data, before=state.pop(key, None)))
    return i


def _capture_events(w: Words, i: int, wanted: _Wanted, tx_index: int, op_index: int, tx_hash: str,
                    successful: bool, found: list[MetaEvent]) -> int:
    """Skip `ContractEvent<>` at `i`, keeping the watched contracts' contract and system events."""
    raw = w.raw
    n = w[i]
    i += 1
    for index in range(n):
        start = i
        i = _contract_event(w, i)
        if not w[start + 1]:
            continue
        contract = raw[4 * start + 8:4 * start + 40]
        kind = w[start + 10]
        if contract not in wanted.contracts or kind == 2:
            continue
        q, topics = start + 13, []
        for _ in range(w[start + 12]):
            end = _scval(w, q)
            topics.append(_b64(raw[4 * q:4 * end]))
            q = end
        found.append(MetaEvent(tx_index=tx_index, op_index=op_index, event_index=index, tx_hash=tx_hash,
                               contract_id=StrKey.encode_contract(contract),
                               event_type="contract" if kind == 1 else "system", topic=tuple(topics),
                               value=_b64(raw[4 * q:4 * i]), successful=successful))
    return i


def _extract_transaction(w: Words, i: int, version: int, tx_index: int, wanted: _Wanted, meta: LedgerMeta) -> None:
    """One watched transaction's events and entry changes, read from its words."""
    if version == 2:
        i += 1  # TransactionResultMetaV1's extension
    tx_hash = w.raw[4 * i:4 * i + 32].hex()
    successful = w[i + 10] in (0, 1)  # txSUCCESS, txFEE_BUMP_INNER_SUCCESS (after the hash and the fee)
    i = _changes(w, _transaction_result(w, i + 8))  # fee changes (the source account) are not read
    apply_version = w[i]
    if apply_version not in (3, 4):
        raise XdrError(f"unsupported TransactionMeta version {apply_version} (v3 and v4 are read)")
    i = _capture_changes(w, i + 2, wanted, tx_index, None, tx_hash, meta.changes)
    operations = w[i]
    i += 1
    for op_index in range(operations):
        if apply_version == 4:
            i = _capture_changes(w, i + 1, wanted, tx_index, op_index, tx_hash, meta.changes)
            i = _capture_events(w, i, wanted, tx_index, op_index, tx_hash, successful, meta.events)
        else:
            i = _capture_changes(w, i, wanted, tx_index, op_index, tx_hash, meta.changes)
    i = _capture_changes(w, i, wanted, tx_index, None, tx_hash, meta.changes)
    if apply_version == 3 and w[i]:  # v3: a Soroban transaction's events are its meta's, of operation 0
        _capture_events(w, _soroban_meta_ext(w, i + 1), wanted, tx_index, 0, tx_hash, successful, meta.events)


_sdk_upgrade = _sdk(xdr.UpgradeEntryMeta)
_sdk_scp_history = _sdk(xdr.SCPHistoryEntry)


def parse_ledger(data: bytes, watch: Watch, needles: Collection[bytes] | None = None) -> LedgerMeta:
    """The header of a `LedgerCloseMeta` and the watched events and changes of its transactions.

    `needles` are `watch.needles()`, passed in by callers reading many ledgers. Raises
    `XdrError` for bytes that are not LedgerCloseMeta v1/v2 (or are truncated).
    """
    needles = watch.needles() if needles is None else needles
    wanted = _Wanted.of(watch)
    w = words(data)
    try:
        version, header, i = _meta_header(w)
        i = _generalized_tx_set(w, i)
        count = w[i]
        i += 1
        meta = LedgerMeta(header=header, version=version, transactions=count, decoded=0)
        skip = _result_meta_v0 if version == 1 else _result_meta_v1
        # Where the needles are: a transaction holding none of them is only skipped.
        hits = sorted(p for needle in needles for p in _positions(data, needle, 4 * i))
        for index in range(1, count + 1):
            end = skip(w, i)
            if hits and hits[0] < 4 * end:
                _extract_transaction(w, i, version, index, wanted, meta)
                meta.decoded += 1
                while hits and hits[0] < 4 * end:
                    hits.pop(0)
            i = end
        i = _array(w, i, _sdk_upgrade)
        i = _array(w, i, _sdk_scp_history) + 2  # the size of live Soroban state
        evicted = w[i]
        i += 1
        for _ in range(evicted):
            end = _ledger_key(w, i)
            meta.evicted.append(_b64(data[4 * i:4 * end]))
            i = end
        if version == 1:
            i = _array(w, i, _sdk_ledger_entry)
        if i != len(w):
            raise XdrError(f"{4 * (len(w) - i)} trailing bytes after the LedgerCloseMeta")
    except (ValueError, IndexError, EOFError) as error:
        if isinstance(error, XdrError):
            raise
        raise XdrError(f"ledger metadata does not parse: {error}") from error
    return meta


def _positions(data: bytes, needle: bytes, start: int) -> list[int]:
    """Every offset of `needle` in `data` from `start` (a C-speed search per occurrence)."""
    found = []
    at = data.find(needle, start)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found
