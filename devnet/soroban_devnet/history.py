"""The devnet's ledger history: what `getLedgers` serves, as real XDR.

Every transaction the devnet applies (a seeder's write, an event, a streak sync)
is kept per ledger, and each ledger is served as a real `LedgerCloseMeta`:
v2 with `TransactionMeta` v4 from protocol 23, v1 with v3 before. Its header
is a real `LedgerHeader` whose hash is the SHA-256 of its XDR and whose
`previousLedgerHash` is the hash of the ledger before, so the ledgers form a
hash chain as on a network. Entries written by a transaction appear as
`STATE`/`UPDATED`, `CREATED`, `REMOVED` or `RESTORED` changes (with the TTL
entries a persistent entry carries), events as contract events of their
operation, and entries evicted to the archive in `evictedKeys`.

XDR is concatenated byte by byte from the pieces each write already holds
(base64 entries and ScVals): seeding thousands of transactions stays cheap.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

_U32 = struct.Struct(">I").pack
_I32 = struct.Struct(">i").pack
_U64 = struct.Struct(">Q").pack
_I64 = struct.Struct(">q").pack
_NONE = _U32(0)

CREATED, UPDATED, REMOVED, STATE, RESTORED = 0, 1, 2, 3, 4
TTL_ENTRY = 9
CONTRACT_DATA = 6
CONTRACT_EVENT = 1
_HEADER = struct.Struct(">I32s32sQII32s32sIqqIQIII128sI")
"""LedgerHeader: version, previous hash, StellarValue (tx set hash, close time, no upgrades, basic), result
hash, bucket list hash, sequence, total coins, fee pool, inflation seq, id pool, base fee, base reserve,
max tx set size, skip list, extension."""


def _sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


_SKIP_LIST = bytes(128)
_TOTAL_COINS = 10**18


def header_packer(protocol: int) -> Callable[[int, bytes, int], bytes]:
    """(sequence, previous hash, close time) -> a real `LedgerHeader`. Its transaction-set and
    bucket-list hashes are stand-ins (the sequence repeated): the devnet commits to no bucket list,
    and a header must not change when seeders add history to a past ledger, or every later hash would."""
    pack = _HEADER.pack

    def header(sequence: int, previous_hash: bytes, close_time: int) -> bytes:
        label = _U32(sequence) * 8
        return pack(protocol, previous_hash, label, close_time, 0, 0, label, label, sequence, _TOTAL_COINS, 0, 0, 0,
                    100, 5_000_000, 1000, _SKIP_LIST, 0)

    return header


def ttl_key(key: bytes) -> bytes:
    """The TTL entry's key of a contract-data (or code) entry: the SHA-256 of its key."""
    return _U32(TTL_ENTRY) + _sha(key)


def _ledger_entry(last_modified: int, data: bytes) -> bytes:
    return _U32(last_modified) + data + _NONE


def _ttl_data(key: bytes, live_until: int) -> bytes:
    return _U32(TTL_ENTRY) + _sha(key) + _U32(live_until)


def is_contract_data(key: bytes) -> bool:
    return key[:4] == _U32(CONTRACT_DATA)


def contract_event(contract_raw: bytes, topics: list[bytes], value: bytes) -> bytes:
    """A `ContractEvent` of type CONTRACT."""
    return (_NONE + _U32(1) + contract_raw + _U32(CONTRACT_EVENT) + _NONE + _U32(len(topics)) + b"".join(topics)
            + value)


@dataclass
class Operation:
    """One operation's entry changes (raw `LedgerEntryChange`s) and contract events (raw `ContractEvent`s)."""

    changes: list[bytes] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)
    contract: bytes | None = None
    """The contract the operation invoked (raw 32 bytes), if any."""


@dataclass
class AppliedTransaction:
    tx_hash: str
    successful: bool = True
    operations: list[Operation] = field(default_factory=list)
    raw: tuple[bytes, bytes, bytes] | None = None
    """(TransactionEnvelope, TransactionResult, TransactionMeta) of a transaction the write path applied
    itself; None for one the devnet describes from its writes and events."""

    def operation(self, index: int) -> Operation:
        while len(self.operations) <= index:
            self.operations.append(Operation())
        return self.operations[index]

    def write(self, key: bytes, data: bytes, ledger: int, before: tuple[bytes, int] | None,
              live_until: int | None, ttl_before: int | None, op_index: int = 0) -> None:
        """An entry created or updated (with its state before), and the TTL entry that goes with it."""
        op = self.operation(op_index)
        if before is None:
            op.changes.append(_U32(CREATED) + _ledger_entry(ledger, data))
        else:
            op.changes += [_U32(STATE) + _ledger_entry(before[1], before[0]),
                           _U32(UPDATED) + _ledger_entry(ledger, data)]
        if live_until is not None and live_until != ttl_before:
            if ttl_before is None:
                op.changes.append(_U32(CREATED) + _ledger_entry(ledger, _ttl_data(key, live_until)))
            else:
                op.changes += [_U32(STATE) + _ledger_entry(ledger, _ttl_data(key, ttl_before)),
                               _U32(UPDATED) + _ledger_entry(ledger, _ttl_data(key, live_until))]

    def extend(self, key: bytes, ledger: int, ttl_before: int | None, live_until: int, op_index: int = 0) -> None:
        """A TTL extended: only the TTL entry changes, the data entry keeps its last-modified ledger."""
        op = self.operation(op_index)
        if ttl_before is None:
            op.changes.append(_U32(CREATED) + _ledger_entry(ledger, _ttl_data(key, live_until)))
        else:
            op.changes += [_U32(STATE) + _ledger_entry(ledger, _ttl_data(key, ttl_before)),
                           _U32(UPDATED) + _ledger_entry(ledger, _ttl_data(key, live_until))]

    def remove(self, key: bytes, before: tuple[bytes, int], had_ttl: bool, op_index: int = 0) -> None:
        op = self.operation(op_index)
        op.changes += [_U32(STATE) + _ledger_entry(before[1], before[0]), _U32(REMOVED) + key]
        if had_ttl:
            op.changes.append(_U32(REMOVED) + ttl_key(key))

    def restore(self, key: bytes, data: bytes, ledger: int, live_until: int, op_index: int = 0) -> None:
        """An archived entry restored (protocol 23: `RESTORED` changes for the entry and its TTL)."""
        op = self.operation(op_index)
        op.changes += [_U32(RESTORED) + _ledger_entry(ledger, data),
                       _U32(RESTORED) + _ledger_entry(ledger, _ttl_data(key, live_until))]


# -- a described transaction as XDR --------------------------------------------------------------

_SOURCE = _sha(b"devnet-seeder")
_APPLY = b"apply\x00\x00\x00"


def _envelope(tx: AppliedTransaction, sequence: int) -> bytes:
    """A `TransactionEnvelope` (v1) invoking each operation's contract (a payment to self otherwise)."""
    operations = []
    for op in tx.operations:
        if op.contract is not None:  # invoke_contract(contract, "apply", []), no auth
            operations.append(_NONE + _U32(24) + _NONE + _U32(1) + op.contract + _U32(5) + _APPLY + _NONE + _NONE)
        else:  # a native payment to the seeder itself
            operations.append(_NONE + _U32(1) + _NONE + _SOURCE + _NONE + _I64(1))
    return (_U32(2) + _NONE + _SOURCE + _U32(100 * max(1, len(operations))) + _I64(sequence) + _NONE + _NONE
            + _U32(len(operations)) + b"".join(operations) + _NONE + _NONE)


def _result(tx: AppliedTransaction) -> bytes:
    """`TransactionResult`: each operation's result (an invocation's success hash, or a payment's success)."""
    results = []
    for op in tx.operations:
        if op.contract is not None:
            results.append(_NONE + _U32(24) + (_NONE + _sha(b"".join(op.events)) if tx.successful else _I32(-2)))
        else:
            results.append(_NONE + _U32(1) + _NONE)
    code = 0 if tx.successful else -1
    return _I64(100) + _I32(code) + _U32(len(results)) + b"".join(results) + _NONE


def _meta(tx: AppliedTransaction, version: int) -> bytes:
    """`TransactionMeta` v4 (events per operation) or v3 (a Soroban meta holding the events)."""
    ops = tx.operations if tx.successful else [Operation(contract=o.contract) for o in tx.operations]
    if version == 4:
        body = b"".join(_NONE + _U32(len(o.changes)) + b"".join(o.changes) + _U32(len(o.events)) + b"".join(o.events)
                        for o in ops)
        soroban = _U32(1) + _NONE + _U32(1) + _U32(1)  # present: extension v0, a void return value
        return _U32(4) + _NONE + _NONE + _U32(len(ops)) + body + _NONE + soroban + _NONE + _NONE
    body = b"".join(_U32(len(o.changes)) + b"".join(o.changes) for o in ops)
    events = [e for o in ops for e in o.events]
    soroban = _U32(1) + _NONE + _U32(len(events)) + b"".join(events) + _U32(1) + _NONE  # events, void, no diagnostics
    return _U32(3) + _NONE + _NONE + _U32(len(ops)) + body + _NONE + soroban


def transaction_parts(tx: AppliedTransaction, sequence: int, meta_version: int) -> tuple[bytes, bytes, bytes]:
    """(envelope, result, meta) of a transaction as the ledger's XDR holds them."""
    if tx.raw is not None:
        return tx.raw
    return _envelope(tx, sequence), _result(tx), _meta(tx, meta_version)


def ledger_close_meta(version: int, ledger_hash: bytes, header: bytes, previous_hash: bytes,
                      transactions: list[tuple[str, bytes, bytes, bytes]], evicted: list[bytes]) -> bytes:
    """A `LedgerCloseMeta` v1 or v2: header, the transaction set (one phase), each transaction's result
    and meta in application order, and the keys evicted in this ledger.

    `transactions` are (hash, envelope, result, meta)."""
    entry = ledger_hash + header + _NONE
    envelopes = [t[1] for t in transactions]
    tx_set = (_U32(1) + previous_hash + _U32(1) + _NONE + _U32(1) + _NONE + _NONE
              + _U32(len(envelopes)) + b"".join(envelopes))
    if version == 2:
        processing = b"".join(_NONE + bytes.fromhex(h) + result + _NONE + meta + _NONE
                              for h, _, result, meta in transactions)
    else:
        processing = b"".join(bytes.fromhex(h) + result + _NONE + meta for h, _, result, meta in transactions)
    tail = _NONE + _NONE + _U64(0) + _U32(len(evicted)) + b"".join(evicted)
    if version == 1:
        tail += _NONE  # the unused LedgerEntry array
    return _U32(version) + _NONE + entry + tx_set + _U32(len(transactions)) + processing + tail


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)
