"""Account (G...) and contract (C...) addresses in C-speed code, equal to `stellar_sdk.StrKey`.

The SDK decodes base32 in pure Python and encodes again to check it: about 10 µs
to validate or decode one address here, and a balances sweep validates and
decodes several per holder (a second per 100k holders). A 56-character strkey
is 35 bytes exactly (version, 32-byte key, CRC16-XModem little-endian), so
translating the RFC 4648 alphabet to Python's base-32 digits lets `int(text, 32)`
do the decoding. `tests/chain/test_strkey.py` checks every function against the
SDK on property-generated valid and corrupted addresses.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

import numpy as np

ACCOUNT_VERSION = 6 << 3  # "G"
CONTRACT_VERSION = 2 << 3  # "C"
_PAYLOAD_BYTES = 35
_STRKEY = re.compile(r"[A-Z2-7]{56}")
_TO_INT_DIGITS = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789abcdefghijklmnopqrstuv")


def _key(text: object, version: int) -> bytes | None:
    """The 32-byte key of a valid strkey with this version byte; None otherwise."""
    if not isinstance(text, str) or _STRKEY.fullmatch(text) is None:
        return None
    data = int(text.translate(_TO_INT_DIGITS), 32).to_bytes(_PAYLOAD_BYTES, "big")
    if data[0] != version or binascii.crc_hqx(data[:-2], 0) != int.from_bytes(data[-2:], "little"):
        return None
    return data[1:-2]


def _encode(version: int, key: bytes) -> str:
    if len(key) != 32:
        raise ValueError(f"a strkey holds 32 bytes, got {len(key)}")
    payload = bytes((version,)) + key
    checksum = binascii.crc_hqx(payload, 0).to_bytes(2, "little")
    return base64.b32encode(payload + checksum).decode("ascii")


def is_account(text: object) -> bool:
    return _key(text, ACCOUNT_VERSION) is not None


def is_contract(text: object) -> bool:
    return _key(text, CONTRACT_VERSION) is not None


def decode_account(text: str) -> bytes:
    key = _key(text, ACCOUNT_VERSION)
    if key is None:
        raise ValueError(f"not a valid G... account address: {text!r}")
    return key


def decode_contract(text: str) -> bytes:
    key = _key(text, CONTRACT_VERSION)
    if key is None:
        raise ValueError(f"not a valid C... contract address: {text!r}")
    return key


def muxed_account_base(text: object) -> str | None:
    """The G... account a valid M... (muxed, SEP-23) address belongs to; None for anything else.

    Rare enough in an application's wallets that the SDK's decoder is fast enough."""
    if not isinstance(text, str) or not text.startswith("M"):
        return None
    from stellar_sdk import MuxedAccount

    try:
        return MuxedAccount.from_account(text).account_id
    except ValueError:
        return None


def encode_account(key: bytes) -> str:
    return _encode(ACCOUNT_VERSION, key)


def encode_contract(key: bytes) -> str:
    return _encode(CONTRACT_VERSION, key)


# -- many at once (a batch of a sweep) --------------------------------------------------

_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
_DIGIT_OF = np.full(256, 255, dtype=np.uint8)
_DIGIT_OF[_ALPHABET] = np.arange(32, dtype=np.uint8)
_DIGIT_SHIFTS = np.arange(35, -1, -5, dtype=np.uint64)
"""Where each of a 40-bit group's eight 5-bit digits starts."""
_BYTE_SHIFTS = np.arange(32, -1, -8, dtype=np.uint64)
"""Where each of a 40-bit group's five bytes starts."""


def _crcs(payloads: np.ndarray) -> np.ndarray:
    """CRC16-XModem of each payload's version byte and key (its first 33 bytes)."""
    prefix = np.ascontiguousarray(payloads[:, :33]).tobytes()
    return np.fromiter((binascii.crc_hqx(prefix[i * 33 : (i + 1) * 33], 0) for i in range(len(payloads))),
                       dtype=np.uint16, count=len(payloads))


def encode_many(keys: np.ndarray, version: int) -> np.ndarray:
    """`encode_account` / `encode_contract` (by `version`) of each row of 32-byte keys, as an object
    array: the base32 of the whole batch at once, each 5 bytes as 8 characters."""
    count = len(keys)
    payloads = np.empty((count, _PAYLOAD_BYTES), dtype=np.uint8)
    payloads[:, 0] = version
    payloads[:, 1:33] = keys
    crcs = _crcs(payloads)
    payloads[:, 33] = crcs & 0xFF
    payloads[:, 34] = crcs >> 8
    groups = (payloads.reshape(count, 7, 5).astype(np.uint64) << _BYTE_SHIFTS).sum(axis=2, dtype=np.uint64)
    digits = (groups[..., None] >> _DIGIT_SHIFTS) & np.uint64(31)
    text = _ALPHABET[digits.reshape(count, 56)].tobytes().decode("ascii")
    return np.fromiter((text[i * 56 : (i + 1) * 56] for i in range(count)), dtype=object, count=count)


def decode_many(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The 35-byte payloads (version, key, CRC) of many strkeys at once, and which are valid
    strkeys of some version (56 characters of the alphabet, the CRC matching); the version byte is
    the caller's to check. Not all text of 56 ASCII characters: none valid."""
    count = len(texts)
    payloads = np.zeros((count, _PAYLOAD_BYTES), dtype=np.uint8)
    if not all(type(t) is str and len(t) == 56 and t.isascii() for t in texts):
        return payloads, np.zeros(count, dtype=bool)
    digits = _DIGIT_OF[np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)].reshape(count, 7, 8)
    valid = (digits != 255).all(axis=(1, 2))
    groups = (digits.astype(np.uint64) << _DIGIT_SHIFTS).sum(axis=2, dtype=np.uint64)
    payloads[:] = ((groups[..., None] >> _BYTE_SHIFTS) & np.uint64(0xFF)).reshape(count, _PAYLOAD_BYTES)
    crcs = _crcs(payloads)
    valid &= (payloads[:, 33] == (crcs & 0xFF)) & (payloads[:, 34] == (crcs >> 8))
    return payloads, valid
