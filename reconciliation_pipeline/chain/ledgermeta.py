"""Reading `LedgerCloseMeta` (what `getLedgers` serves as `metadataXdr`) without decoding it whole.

A busy ledger holds hundreds of transactions; a reconciliation cares about the
few that touch its contracts. `stellar_sdk.xdr` builds a Python object per XDR
node (milliseconds per transaction), so this module walks the bytes instead:

- the ledger header is read field by field (sequence, close time, its hash and
  the previous ledger's, and whether its hash really is the SHA-256 of the header);
- the transaction set and every `TransactionResultMeta` are *skipped*: a skipper
  per XDR type advances a position without building anything, hot types by hand
  (payments, offers, path payments, Soroban invocations, their results and entry
  changes), rarer arms through the SDK's own unpacker (same bytes, slower);
- a transaction whose bytes contain none of the watched needles (the 32 raw bytes
  of a watched contract or account) is never decoded; the few that do are decoded
  with the SDK and their contract events and entry changes extracted.

LedgerCloseMeta v1 and v2 (protocol 23) and TransactionMeta v3 and v4 are read;
anything else raises `XdrError`, which the replay records as a finding.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from stellar_sdk import StrKey, xdr
from xdrlib3 import Unpacker

from reconciliation_pipeline.chain.fastxdr import XdrError

_U32 = struct.Struct(">I").unpack_from
_I32 = struct.Struct(">i").unpack_from
_U64 = struct.Struct(">Q").unpack_from

Skip = Callable[[bytes, int], int]


def _sdk(cls: Any) -> Skip:
    """Skip one value of an XDR type with the SDK's unpacker: every arm, at the SDK's speed."""

    def skip(b: bytes, p: int) -> int:
        unpacker = Unpacker(b)
        unpacker.set_position(p)
        cls.unpack(unpacker)
        return unpacker.get_position()

    return skip


def _opaque(b: bytes, p: int) -> int:
    """Variable-length opaque or string: a length, the bytes, padding to 4."""
    (n,) = _U32(b, p)
    return p + 4 + ((n + 3) & ~3)


def _optional(b: bytes, p: int, skip: Skip) -> int:
    (present,) = _U32(b, p)
    return skip(b, p + 4) if present else p + 4


def _array(b: bytes, p: int, skip: Skip) -> int:
    (n,) = _U32(b, p)
    p += 4
    for _ in range(n):
        p = skip(b, p)
    return p


# -- small shapes ------------------------------------------------------------------------

def _account_id(b: bytes, p: int) -> int:
    if _U32(b, p)[0] != 0:  # PUBLIC_KEY_TYPE_ED25519 is the only key type
        raise XdrError(f"unsupported public key type {_U32(b, p)[0]}")
    return p + 36


def _muxed_account(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind == 0:
        return p + 36
    if kind == 0x100:
        return p + 44
    raise XdrError(f"unsupported MuxedAccount type {kind}")


_ASSET_WIDTH = {0: 4, 1: 44, 2: 52}
_TRUSTLINE_ASSET_WIDTH = {0: 4, 1: 44, 2: 52, 3: 36}


def _asset(b: bytes, p: int) -> int:
    width = _ASSET_WIDTH.get(_U32(b, p)[0])
    if width is None:
        raise XdrError(f"unsupported Asset type {_U32(b, p)[0]}")
    return p + width


def _trustline_asset(b: bytes, p: int) -> int:
    width = _TRUSTLINE_ASSET_WIDTH.get(_U32(b, p)[0])
    if width is None:
        raise XdrError(f"unsupported TrustLineAsset type {_U32(b, p)[0]}")
    return p + width


_SC_ADDRESS_WIDTH = {0: 40, 1: 36, 2: 44, 3: 40, 4: 36}


def _sc_address(b: bytes, p: int) -> int:
    width = _SC_ADDRESS_WIDTH.get(_U32(b, p)[0])
    if width is None:
        return _sdk_sc_address(b, p)
    return p + width


_sdk_sc_address = _sdk(xdr.SCAddress)

# ScVal arms of fixed width (type tag included): bool, void, error, u32, i32, u64, i64, timepoint, duration,
# u128, i128, u256, i256, the instance key and a nonce key.
_SCVAL_FIXED = {0: 8, 1: 4, 2: 12, 3: 8, 4: 8, 5: 12, 6: 12, 7: 12, 8: 12, 9: 20, 10: 20, 11: 36, 12: 36,
                20: 4, 21: 12}
_sdk_scval = _sdk(xdr.SCVal)


def _scval(b: bytes, p: int, _fixed: dict[int, int] = _SCVAL_FIXED, _u32: Callable = _U32) -> int:
    (kind,) = _u32(b, p)
    width = _fixed.get(kind)
    if width is not None:
        return p + width
    if kind in (13, 14, 15):  # bytes, string, symbol
        return _opaque(b, p + 4)
    if kind == 16:  # vec
        if not _U32(b, p + 4)[0]:
            return p + 8
        (n,) = _U32(b, p + 8)
        p += 12
        for _ in range(n):
            p = _scval(b, p)
        return p
    if kind == 17:  # map
        if not _U32(b, p + 4)[0]:
            return p + 8
        (n,) = _U32(b, p + 8)
        p += 12
        for _ in range(n):
            p = _scval(b, _scval(b, p))
        return p
    if kind == 18:
        return _sc_address(b, p + 4)
    if kind == 19:  # a contract instance: its executable (a wasm hash, or the asset contract), its storage
        (executable,) = _U32(b, p + 4)
        if executable == 0:
            p += 40
        elif executable == 1:
            p += 8
        else:
            return _sdk_scval(b, p)
        if not _U32(b, p)[0]:
            return p + 4
        (n,) = _U32(b, p + 4)
        p += 8
        for _ in range(n):
            p = _scval(b, _scval(b, p))
        return p
    return _sdk_scval(b, p)


def _ledger_key(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind == 6:  # contract data: address, key, durability
        return _scval(b, _sc_address(b, p + 4)) + 4
    if kind == 1:
        return _trustline_asset(b, _account_id(b, p + 4))
    if kind == 0:
        return _account_id(b, p + 4)
    if kind in (7, 9):  # contract code, TTL: a hash
        return p + 36
    if kind == 2:
        return _account_id(b, p + 4) + 8
    if kind == 5:
        return p + 36
    return _sdk_ledger_key(b, p)


_sdk_ledger_key = _sdk(xdr.LedgerKey)


# -- transactions ------------------------------------------------------------------------

def _invoke_contract_args(b: bytes, p: int) -> int:
    return _array(b, _opaque(b, _sc_address(b, p)), _scval)


_sdk_host_function = _sdk(xdr.HostFunction)
_sdk_credentials = _sdk(xdr.SorobanCredentials)
_sdk_authorized_function = _sdk(xdr.SorobanAuthorizedFunction)


def _host_function(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind == 0:
        return _invoke_contract_args(b, p + 4)
    if kind == 2:  # upload wasm
        return _opaque(b, p + 4)
    return _sdk_host_function(b, p)


def _authorized_invocation(b: bytes, p: int) -> int:
    if _U32(b, p)[0] == 0:
        p = _invoke_contract_args(b, p + 4)
    else:
        p = _sdk_authorized_function(b, p)
    return _array(b, p, _authorized_invocation)


def _authorization_entry(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind == 0:
        p += 4
    elif kind == 1:  # address credentials: address, nonce, expiration, signature
        p = _scval(b, _sc_address(b, p + 4) + 12)
    else:
        p = _sdk_credentials(b, p)
    return _authorized_invocation(b, p)


def _path(b: bytes, p: int) -> int:
    return _array(b, p, _asset)


def _op_payment(b: bytes, p: int) -> int:
    return _asset(b, _muxed_account(b, p)) + 8


def _op_path_payment(b: bytes, p: int) -> int:
    # send asset, send amount, destination, destination asset, destination amount, path
    p = _asset(b, p) + 8
    p = _asset(b, _muxed_account(b, p)) + 8
    return _path(b, p)


def _op_offer(b: bytes, p: int) -> int:
    # selling, buying, amount, price (n, d), offer id
    return _asset(b, _asset(b, p)) + 24


def _op_passive_offer(b: bytes, p: int) -> int:
    return _asset(b, _asset(b, p)) + 16


def _op_change_trust(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind == 3:  # pool share: the pool's parameters
        return _sdk_change_trust(b, p)
    return _asset(b, p) + 8


_sdk_change_trust = _sdk(xdr.ChangeTrustOp)


def _op_invoke(b: bytes, p: int) -> int:
    return _array(b, _host_function(b, p), _authorization_entry)


_OP_BODY: dict[int, Skip] = {
    0: lambda b, p: _account_id(b, p) + 8,  # create account
    1: _op_payment,
    2: _op_path_payment,
    3: _op_offer,
    4: _op_passive_offer,
    6: _op_change_trust,
    8: _muxed_account,  # account merge
    9: lambda b, p: p,  # inflation
    11: lambda b, p: p + 8,  # bump sequence
    12: _op_offer,
    13: _op_path_payment,
    24: _op_invoke,
    25: lambda b, p: p + 8,  # extend footprint TTL: extension point, extend to
    26: lambda b, p: p + 4,  # restore footprint: extension point
}
_sdk_operation = _sdk(xdr.Operation)


def _operation(b: bytes, p: int) -> int:
    start = p
    p = _optional(b, p, _muxed_account)
    skip = _OP_BODY.get(_U32(b, p)[0])
    if skip is None:
        return _sdk_operation(b, start)
    return skip(b, p + 4)


_sdk_preconditions = _sdk(xdr.Preconditions)
_sdk_memo = _sdk(xdr.Memo)


def _preconditions(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind == 0:
        return p + 4
    if kind == 1:
        return p + 20
    return _sdk_preconditions(b, p)


def _memo(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind == 0:
        return p + 4
    if kind == 1:
        return _opaque(b, p + 4)
    if kind == 2:
        return p + 12
    if kind in (3, 4):
        return p + 36
    return _sdk_memo(b, p)


def _soroban_data(b: bytes, p: int) -> int:
    (ext,) = _U32(b, p)
    p += 4
    if ext == 1:
        p = _array(b, p, lambda _b, q: q + 4)
    elif ext != 0:
        raise XdrError(f"unsupported SorobanTransactionData extension {ext}")
    p = _array(b, p, _ledger_key)  # read-only footprint
    p = _array(b, p, _ledger_key)  # read-write footprint
    return p + 12 + 8  # instructions, read bytes, write bytes, resource fee


def _transaction_ext(b: bytes, p: int) -> int:
    (ext,) = _U32(b, p)
    if ext == 0:
        return p + 4
    if ext == 1:
        return _soroban_data(b, p + 4)
    raise XdrError(f"unsupported Transaction extension {ext}")


def _signatures(b: bytes, p: int) -> int:
    (n,) = _U32(b, p)
    p += 4
    for _ in range(n):
        p = _opaque(b, p + 4)  # hint, signature
    return p


def _transaction_v1(b: bytes, p: int) -> int:
    p = _muxed_account(b, p) + 4 + 8  # source, fee, sequence
    p = _memo(b, _preconditions(b, p))
    p = _array(b, p, _operation)
    return _transaction_ext(b, p)


def _transaction_v0(b: bytes, p: int) -> int:
    p += 32 + 4 + 8
    p = _optional(b, p, lambda _b, q: q + 16)
    p = _array(b, _memo(b, p), _operation)
    return p + 4


def _envelope(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind == 2:
        return _signatures(b, _transaction_v1(b, p + 4))
    if kind == 5:  # fee bump: fee source, fee, inner v1 envelope, ext, signatures
        p = _muxed_account(b, p + 4) + 8
        if _U32(b, p)[0] != 2:
            raise XdrError(f"unsupported fee-bump inner envelope type {_U32(b, p)[0]}")
        p = _signatures(b, _transaction_v1(b, p + 4)) + 4
        return _signatures(b, p)
    if kind == 0:
        return _signatures(b, _transaction_v0(b, p + 4))
    raise XdrError(f"unsupported TransactionEnvelope type {kind}")


def _tx_set_component(b: bytes, p: int) -> int:
    if _U32(b, p)[0] != 0:
        raise XdrError(f"unsupported TxSetComponent type {_U32(b, p)[0]}")
    p = _optional(b, p + 4, lambda _b, q: q + 8)  # base fee
    return _array(b, p, _envelope)


def _phase(b: bytes, p: int) -> int:
    (version,) = _U32(b, p)
    if version == 0:
        return _array(b, p + 4, _tx_set_component)
    if version == 1:  # parallel Soroban phase: base fee, stages of clusters of envelopes
        p = _optional(b, p + 4, lambda _b, q: q + 8)
        return _array(b, p, lambda b2, q: _array(b2, q, lambda b3, r: _array(b3, r, _envelope)))
    raise XdrError(f"unsupported TransactionPhase version {version}")


def _generalized_tx_set(b: bytes, p: int) -> int:
    if _U32(b, p)[0] != 1:
        raise XdrError(f"unsupported GeneralizedTransactionSet version {_U32(b, p)[0]}")
    return _array(b, p + 4 + 32, _phase)


# -- results -----------------------------------------------------------------------------

def _claim_atom(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind == 1:  # order book: seller, offer id, sold, amount, bought, amount
        p = _asset(b, _account_id(b, p + 4) + 8) + 8
        return _asset(b, p) + 8
    if kind == 2:  # liquidity pool: pool id, sold, amount, bought, amount
        return _asset(b, _asset(b, p + 36) + 8) + 8
    if kind == 0:
        return _asset(b, _asset(b, p + 4 + 40) + 8) + 8
    raise XdrError(f"unsupported ClaimAtom type {kind}")


def _offer_entry(b: bytes, p: int) -> int:
    p = _asset(b, _asset(b, _account_id(b, p) + 8))
    p += 8 + 8 + 4  # amount, price, flags
    if _U32(b, p)[0] != 0:
        raise XdrError("unsupported OfferEntry extension")
    return p + 4


def _result_path_payment(b: bytes, p: int) -> int:
    (code,) = _I32(b, p)
    if code == 0:  # offers claimed, then the last payment: destination, asset, amount
        p = _array(b, p + 4, _claim_atom)
        return _asset(b, _account_id(b, p)) + 8
    if code == -9:  # no issuer: the asset
        return _asset(b, p + 4)
    return p + 4


def _result_offer(b: bytes, p: int) -> int:
    (code,) = _I32(b, p)
    if code != 0:
        return p + 4
    p = _array(b, p + 4, _claim_atom)
    (effect,) = _U32(b, p)
    return _offer_entry(b, p + 4) if effect in (0, 1) else p + 4


def _result_code_only(b: bytes, p: int) -> int:
    return p + 4


def _result_account_merge(b: bytes, p: int) -> int:
    return p + 12 if _I32(b, p)[0] == 0 else p + 4


def _result_invoke(b: bytes, p: int) -> int:
    return p + 36 if _I32(b, p)[0] == 0 else p + 4


_OP_RESULT: dict[int, Skip] = {
    0: _result_code_only, 1: _result_code_only, 2: _result_path_payment, 3: _result_offer, 4: _result_offer,
    6: _result_code_only, 8: _result_account_merge, 11: _result_code_only, 12: _result_offer,
    13: _result_path_payment, 24: _result_invoke, 25: _result_code_only, 26: _result_code_only,
}
_sdk_operation_result = _sdk(xdr.OperationResult)


def _operation_result(b: bytes, p: int) -> int:
    if _I32(b, p)[0] != 0:  # opBAD_AUTH and the other outer codes carry nothing
        return p + 4
    skip = _OP_RESULT.get(_U32(b, p + 4)[0])
    if skip is None:
        return _sdk_operation_result(b, p)
    return skip(b, p + 8)


def _inner_result(b: bytes, p: int) -> int:
    (code,) = _I32(b, p + 8)
    p += 12
    if code in (0, -1):
        p = _array(b, p, _operation_result)
    return p + 4


def _transaction_result(b: bytes, p: int) -> int:
    (code,) = _I32(b, p + 8)
    p += 12
    if code in (0, -1):
        p = _array(b, p, _operation_result)
    elif code in (1, -13):  # fee bump: inner hash and result
        p = _inner_result(b, p + 32)
    if _U32(b, p)[0] != 0:
        raise XdrError("unsupported TransactionResult extension")
    return p + 4


# -- ledger entries and their changes ---------------------------------------------------------

def _signer(b: bytes, p: int) -> int:
    (kind,) = _U32(b, p)
    if kind in (0, 1, 2):
        return p + 36 + 4
    if kind == 3:
        return _opaque(b, p + 36) + 4
    raise XdrError(f"unsupported SignerKey type {kind}")


def _account_entry(b: bytes, p: int) -> int:
    p = _account_id(b, p) + 8 + 8 + 4  # account, balance, sequence, sub-entries
    p = _optional(b, p, _account_id) + 4  # inflation destination, flags
    p = _opaque(b, p) + 4  # home domain, thresholds
    p = _array(b, p, _signer)
    (ext,) = _U32(b, p)
    p += 4
    if ext == 0:
        return p
    if ext != 1:
        raise XdrError(f"unsupported AccountEntry extension {ext}")
    (ext,) = _U32(b, p + 16)  # after the liabilities
    p += 20
    if ext == 0:
        return p
    if ext != 2:
        raise XdrError(f"unsupported AccountEntryExtensionV1 extension {ext}")
    p = _array(b, p + 8, lambda b2, q: _optional(b2, q, _account_id))
    (ext,) = _U32(b, p)
    if ext == 0:
        return p + 4
    if ext != 3:
        raise XdrError(f"unsupported AccountEntryExtensionV2 extension {ext}")
    return p + 4 + 4 + 4 + 8


def _trustline_entry(b: bytes, p: int) -> int:
    p = _trustline_asset(b, _account_id(b, p)) + 8 + 8 + 4  # balance, limit, flags
    (ext,) = _U32(b, p)
    p += 4
    if ext == 0:
        return p
    (ext,) = _U32(b, p + 16)
    p += 20
    if ext == 0:
        return p
    return p + 4 + 4  # pool use count, extension


def _contract_data_entry(b: bytes, p: int) -> int:
    return _scval(b, _scval(b, _sc_address(b, p + 4)) + 4)


def _contract_code_entry(b: bytes, p: int) -> int:
    (ext,) = _U32(b, p)
    p += 4 + (48 if ext == 1 else 0)  # extension point and ten cost inputs
    return _opaque(b, p + 32)


def _liquidity_pool_entry(b: bytes, p: int) -> int:
    if _U32(b, p + 32)[0] != 0:
        raise XdrError("unsupported LiquidityPool type")
    return _asset(b, _asset(b, p + 36)) + 4 + 32


_ENTRY_DATA: dict[int, Skip] = {
    0: _account_entry, 1: _trustline_entry, 2: _offer_entry, 5: _liquidity_pool_entry, 6: _contract_data_entry,
    7: _contract_code_entry, 9: lambda b, p: p + 36,
}
_sdk_ledger_entry = _sdk(xdr.LedgerEntry)


def _ledger_entry(b: bytes, p: int) -> int:
    skip = _ENTRY_DATA.get(_U32(b, p + 4)[0])
    if skip is None:
        return _sdk_ledger_entry(b, p)
    q = skip(b, p + 8)
    (ext,) = _U32(b, q)
    if ext == 0:
        return q + 4
    return _optional(b, q + 4, _account_id) + 4  # sponsoring id, extension


def _changes(b: bytes, p: int) -> int:
    (n,) = _U32(b, p)
    p += 4
    entry_data = _ENTRY_DATA
    for _ in range(n):
        (kind,) = _U32(b, p)
        if kind == 2:  # removed: a key
            p = _ledger_key(b, p + 4)
            continue
        if kind > 4:
            raise XdrError(f"unsupported LedgerEntryChange type {kind}")
        skip = entry_data.get(_U32(b, p + 8)[0])
        if skip is None:
            p = _sdk_ledger_entry(b, p + 4)
            continue
        q = skip(b, p + 12)
        if _U32(b, q)[0] == 0:
            p = q + 4
        else:
            p = _optional(b, q + 4, _account_id) + 4  # sponsoring id, extension
    return p


# -- transaction meta --------------------------------------------------------------------

def _contract_event(b: bytes, p: int) -> int:
    # extension, an optional contract id, type, body version 0: topics and data
    p += 4
    p += 36 if _U32(b, p)[0] else 4
    if _U32(b, p + 4)[0] != 0:
        raise XdrError("unsupported ContractEvent body")
    (n,) = _U32(b, p + 8)
    p += 12
    scval = _scval
    for _ in range(n):
        p = scval(b, p)
    return scval(b, p)


def _diagnostic_event(b: bytes, p: int) -> int:
    return _contract_event(b, p + 4)


def _soroban_meta_ext(b: bytes, p: int) -> int:
    (ext,) = _U32(b, p)
    if ext == 0:
        return p + 4
    if ext == 1:  # extension point and three fees
        return p + 4 + 4 + 24
    raise XdrError(f"unsupported SorobanTransactionMeta extension {ext}")


def _soroban_meta_v1(b: bytes, p: int) -> int:
    p = _array(b, _soroban_meta_ext(b, p), _contract_event)
    return _array(b, _scval(b, p), _diagnostic_event)


def _soroban_meta_v2(b: bytes, p: int) -> int:
    return _optional(b, _soroban_meta_ext(b, p), _scval)


def _operation_meta_v2(b: bytes, p: int) -> int:
    p = _changes(b, p + 4)
    (n,) = _U32(b, p)
    p += 4
    for _ in range(n):
        p = _contract_event(b, p)
    return p


_sdk_transaction_meta = _sdk(xdr.TransactionMeta)


def _transaction_meta(b: bytes, p: int) -> int:
    (version,) = _U32(b, p)
    if version == 3:
        p = _changes(b, p + 8)
        p = _array(b, p, _changes)  # each OperationMeta is its changes
        p = _changes(b, p)
        return _optional(b, p, _soroban_meta_v1)
    if version == 4:
        p = _changes(b, p + 8)
        p = _array(b, p, _operation_meta_v2)
        p = _optional(b, _changes(b, p), _soroban_meta_v2)
        p = _array(b, p, lambda b2, q: _contract_event(b2, q + 4))  # transaction events: stage, event
        return _array(b, p, _diagnostic_event)
    return _sdk_transaction_meta(b, p)


def _result_meta_v0(b: bytes, p: int) -> int:
    """`TransactionResultMeta` (LedgerCloseMeta v1): result pair, fee changes, apply meta."""
    return _transaction_meta(b, _changes(b, _transaction_result(b, p + 32)))


def _result_meta_v1(b: bytes, p: int) -> int:
    """`TransactionResultMetaV1` (v2): extension, result pair, fee changes, apply meta, post-apply fee changes."""
    if _U32(b, p)[0] != 0:
        raise XdrError("unsupported TransactionResultMetaV1 extension")
    return _changes(b, _transaction_meta(b, _changes(b, _transaction_result(b, p + 4 + 32))))


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


def _header(b: bytes, p: int) -> tuple[LedgerHeader, int]:
    """`LedgerHeaderHistoryEntry` at `p`: the header read, and the position after the entry."""
    entry_hash = b[p:p + 32]
    start = p + 32
    previous = b[start + 4:start + 36]
    (close_time,) = _U64(b, start + 36 + 32)
    q = _array(b, start + 36 + 40, _opaque)  # upgrades
    (value_type,) = _U32(b, q)
    q += 4
    if value_type == 1:  # signed: node id, signature
        q = _opaque(b, _account_id(b, q))
    elif value_type != 0:
        raise XdrError(f"unsupported StellarValue type {value_type}")
    q += 64  # transaction set result hash, bucket list hash
    (sequence,) = _U32(b, q)
    q += 4 + 8 + 8 + 4 + 8 + 4 + 4 + 4 + 128
    (ext,) = _U32(b, q)
    q += 4 + (8 if ext == 1 else 0)
    if ext not in (0, 1):
        raise XdrError(f"unsupported LedgerHeader extension {ext}")
    header = LedgerHeader(sequence=sequence, close_time=close_time, hash=entry_hash.hex(),
                          previous_hash=previous.hex(),
                          hash_matches_header=hashlib.sha256(b[start:q]).digest() == entry_hash)
    if _U32(b, q)[0] != 0:
        raise XdrError("unsupported LedgerHeaderHistoryEntry extension")
    return header, q + 4


def read_header(data: bytes) -> tuple[LedgerHeader, int]:
    """The header of a `LedgerCloseMeta` (v1 or v2), and the position after it."""
    try:
        (version,) = _U32(data, 0)
        if version not in (1, 2):
            raise XdrError(f"unsupported LedgerCloseMeta version {version} (v1 and v2 are read)")
        (ext,) = _U32(data, 4)
        if ext not in (0, 1):
            raise XdrError(f"unsupported LedgerCloseMeta extension {ext}")
        return _header(data, 8 + (12 if ext == 1 else 0))
    except struct.error as error:
        raise XdrError(f"truncated LedgerCloseMeta: {error}") from error


_CHANGE_NAMES = {0: "created", 1: "updated", 2: "removed", 4: "restored"}


def _entry_key(data: xdr.LedgerEntryData) -> xdr.LedgerKey | None:
    """The key of an entry of a kind a reconciliation reads (contract data, trustlines, accounts)."""
    kind = data.type
    if kind == xdr.LedgerEntryType.CONTRACT_DATA:
        d = data.contract_data
        return xdr.LedgerKey(kind, contract_data=xdr.LedgerKeyContractData(d.contract, d.key, d.durability))
    if kind == xdr.LedgerEntryType.TRUSTLINE:
        t = data.trust_line
        return xdr.LedgerKey(kind, trust_line=xdr.LedgerKeyTrustLine(t.account_id, t.asset))
    if kind == xdr.LedgerEntryType.ACCOUNT:
        return xdr.LedgerKey(kind, account=xdr.LedgerKeyAccount(data.account.account_id))
    return None


def _key_contract(key: xdr.LedgerKey) -> str | None:
    if key.type != xdr.LedgerEntryType.CONTRACT_DATA:
        return None
    address = key.contract_data.contract
    if address.type != xdr.SCAddressType.SC_ADDRESS_TYPE_CONTRACT:
        return None
    return StrKey.encode_contract(address.contract_id.contract_id.hash)


def _watched_changes(changes: Iterable[xdr.LedgerEntryChange], watch: Watch, tx_index: int, op_index: int | None,
                     tx_hash: str) -> list[EntryChange]:
    """The watched keys' changes, each with the `STATE` that preceded it as its state before."""
    found: list[EntryChange] = []
    state: dict[str, str] = {}
    for change in changes:
        kind = change.type.value
        if kind == 2:
            key = change.removed
            entry_data = None
        else:
            entry = change.created or change.updated or change.state or change.restored
            key = _entry_key(entry.data)
            entry_data = entry.data.to_xdr()
        if key is None:
            continue
        key_b64 = key.to_xdr()
        if key_b64 not in watch.keys and _key_contract(key) not in watch.contracts:
            continue
        if kind == 3:
            state[key_b64] = entry_data
            continue
        found.append(EntryChange(tx_index=tx_index, op_index=op_index, tx_hash=tx_hash, change=_CHANGE_NAMES[kind],
                                 key=key_b64, entry=entry_data, before=state.pop(key_b64, None)))
    return found


def _events(events: Iterable[xdr.ContractEvent], watch: Watch, tx_index: int, op_index: int, tx_hash: str,
            successful: bool) -> list[MetaEvent]:
    found = []
    for index, event in enumerate(events):
        if event.contract_id is None or event.type == xdr.ContractEventType.DIAGNOSTIC:
            continue
        contract_id = StrKey.encode_contract(event.contract_id.contract_id.hash)
        if contract_id not in watch.contracts:
            continue
        body = event.body.v0
        found.append(MetaEvent(
            tx_index=tx_index, op_index=op_index, event_index=index, tx_hash=tx_hash, contract_id=contract_id,
            event_type="contract" if event.type == xdr.ContractEventType.CONTRACT else "system",
            topic=tuple(t.to_xdr() for t in body.topics), value=body.data.to_xdr(), successful=successful,
        ))
    return found


_sdk_upgrade = _sdk(xdr.UpgradeEntryMeta)
_sdk_scp_history = _sdk(xdr.SCPHistoryEntry)
_SUCCESS_CODES = (xdr.TransactionResultCode.txSUCCESS, xdr.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS)


def _decode_transaction(b: bytes, p: int, version: int, tx_index: int, watch: Watch,
                        meta: LedgerMeta) -> None:
    """One watched transaction, decoded whole with the SDK: its events and entry changes."""
    unpacker = Unpacker(b)
    unpacker.set_position(p)
    processed = (xdr.TransactionResultMeta if version == 1 else xdr.TransactionResultMetaV1).unpack(unpacker)
    tx_hash = processed.result.transaction_hash.hash.hex()
    successful = processed.result.result.result.code in _SUCCESS_CODES
    apply = processed.tx_apply_processing
    if apply.v == 3:
        body = apply.v3
        operations = [(i, op.changes.ledger_entry_changes, []) for i, op in enumerate(body.operations)]
        if body.soroban_meta is not None:
            meta.events += _events(body.soroban_meta.events, watch, tx_index, 0, tx_hash, successful)
    elif apply.v == 4:
        body = apply.v4
        operations = [(i, op.changes.ledger_entry_changes, op.events) for i, op in enumerate(body.operations)]
    else:
        raise XdrError(f"unsupported TransactionMeta version {apply.v} (v3 and v4 are read)")
    meta.changes += _watched_changes(body.tx_changes_before.ledger_entry_changes, watch, tx_index, None, tx_hash)
    for op_index, changes, events in operations:
        meta.events += _events(events, watch, tx_index, op_index, tx_hash, successful)
        meta.changes += _watched_changes(changes, watch, tx_index, op_index, tx_hash)
    meta.changes += _watched_changes(body.tx_changes_after.ledger_entry_changes, watch, tx_index, None, tx_hash)


def parse_ledger(data: bytes, watch: Watch, needles: Collection[bytes] | None = None) -> LedgerMeta:
    """The header of a `LedgerCloseMeta` and the watched events and changes of its transactions.

    `needles` are `watch.needles()`, passed in by callers reading many ledgers. Raises
    `XdrError` for bytes that are not LedgerCloseMeta v1/v2 (or are truncated).
    """
    needles = watch.needles() if needles is None else needles
    header, p = read_header(data)
    version = _U32(data, 0)[0]
    try:
        p = _generalized_tx_set(data, p)
        (count,) = _U32(data, p)
        p += 4
        meta = LedgerMeta(header=header, version=version, transactions=count, decoded=0)
        skip = _result_meta_v0 if version == 1 else _result_meta_v1
        for index in range(1, count + 1):
            end = skip(data, p)
            if any(data.find(needle, p, end) >= 0 for needle in needles):
                _decode_transaction(data, p, version, index, watch, meta)
                meta.decoded += 1
            p = end
        p = _array(data, p, _sdk_upgrade)
        p = _array(data, p, _sdk_scp_history) + 8  # the size of live Soroban state
        (evicted,) = _U32(data, p)
        p += 4
        for _ in range(evicted):
            end = _ledger_key(data, p)
            meta.evicted.append(base64.b64encode(data[p:end]).decode("ascii"))
            p = end
        if version == 1:
            p = _array(data, p, _sdk_ledger_entry)
        if p != len(data):
            raise XdrError(f"{len(data) - p} trailing bytes after the LedgerCloseMeta")
    except (struct.error, ValueError, IndexError) as error:
        if isinstance(error, XdrError):
            raise
        raise XdrError(f"ledger {header.sequence}: metadata does not parse: {error}") from error
    return meta
