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


def _digits_of_groups(groups: np.ndarray) -> np.ndarray:
    """(..., 5) bytes -> (..., 8) base32 digits: each 40-bit group's 5-bit pieces, in uint8 (no
    wide temporaries)."""
    b0, b1, b2, b3, b4 = (groups[..., i] for i in range(5))
    return np.stack([b0 >> 3, ((b0 & 7) << 2) | (b1 >> 6), (b1 >> 1) & 31, ((b1 & 1) << 4) | (b2 >> 4),
                     ((b2 & 15) << 1) | (b3 >> 7), (b3 >> 2) & 31, ((b3 & 3) << 3) | (b4 >> 5), b4 & 31], axis=-1)


def _groups_of_digits(digits: np.ndarray) -> np.ndarray:
    """(..., 8) base32 digits (each below 32) -> (..., 5) bytes, the inverse of `_digits_of_groups`."""
    d0, d1, d2, d3, d4, d5, d6, d7 = (digits[..., i] for i in range(8))
    return np.stack([(d0 << 3) | (d1 >> 2), ((d1 & 3) << 6) | (d2 << 1) | (d3 >> 4), ((d3 & 15) << 4) | (d4 >> 1),
                     ((d4 & 1) << 7) | (d5 << 2) | (d6 >> 3), ((d6 & 7) << 5) | d7], axis=-1)


def _crc_table() -> np.ndarray:
    """CRC16-XModem (polynomial 0x1021) of each byte value: one step of the byte-wise algorithm."""
    table = np.zeros(256, dtype=np.uint16)
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
        table[byte] = crc
    return table


_CRC_TABLE = _crc_table()


def _crcs(payloads: np.ndarray) -> np.ndarray:
    """CRC16-XModem (`binascii.crc_hqx` from 0) of each payload's version byte and key (its first
    33 bytes): the table-driven algorithm a byte column at a time, over every payload at once."""
    crcs = np.zeros(len(payloads), dtype=np.uint16)
    for column in range(33):
        crcs = (crcs << 8) ^ _CRC_TABLE[(crcs >> 8) ^ payloads[:, column]]
    return crcs


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
    digits = _digits_of_groups(payloads.reshape(count, 7, 5))
    # Each row's 56 ASCII codes as UCS-4 code points are one numpy string: cast to Python str in C.
    return _ALPHABET[digits.reshape(count, 56)].astype("<u4").view("<U56").ravel().astype(object)


class EncodingCache:
    """`encode_many` that remembers the strkeys it made. A fleet's addresses repeat (one token in
    every stream, an employer in each of its streams): looking one up costs a tenth of encoding it.
    Emptied when a batch would take it past `capacity` strkeys, so it holds at most that many or one
    batch's."""

    def __init__(self, capacity: int = 16_384) -> None:
        self.capacity = capacity
        self._known: dict[int, dict[bytes, str]] = {}

    def __len__(self) -> int:
        """Strkeys held, of every version."""
        return sum(map(len, self._known.values()))

    def encode_many(self, keys: np.ndarray, version: int) -> np.ndarray:
        count = len(keys)
        raw = np.ascontiguousarray(keys).tobytes()
        rows = [raw[i * 32 : (i + 1) * 32] for i in range(count)]
        known = self._known.setdefault(version, {})
        texts = [known.get(row) for row in rows]
        missing = [i for i, text in enumerate(texts) if text is None]
        if missing:
            if len(self) + len(missing) > self.capacity:
                self._known = {version: (known := {})}
            for i, text in zip(missing, encode_many(keys[missing], version).tolist(), strict=True):
                texts[i] = known[rows[i]] = text
        return np.fromiter(texts, dtype=object, count=count)


def valid_addresses(values: Sequence[object], versions: tuple[int, ...] = (ACCOUNT_VERSION, CONTRACT_VERSION)
                    ) -> np.ndarray:
    """Which values are valid strkeys of one of `versions` (`is_account` / `is_contract` of each),
    decoded all at once: about a fifth of the time of checking them one by one."""
    valid = np.zeros(len(values), dtype=bool)
    joined = _joined_strkey_shaped(values)
    candidates: Sequence[int] | slice = slice(None)
    count = len(values)
    if joined is None:  # a mix: decode the values shaped like a strkey
        candidates = [i for i, v in enumerate(values) if isinstance(v, str) and len(v) == 56 and v.isascii()]
        joined, count = "".join(str(values[i]) for i in candidates).encode("ascii"), len(candidates)
    payloads, decodable = _decode_joined(joined, count)
    valid[candidates] = decodable & np.isin(payloads[:, 0], np.array(versions, dtype=np.uint8))
    return valid


def decode_many(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The 35-byte payloads (version, key, CRC) of many strkeys at once, and which are valid
    strkeys of some version (56 characters of the alphabet, the CRC matching); the version byte is
    the caller's to check. Not all text of 56 ASCII characters: none valid."""
    joined = _joined_strkey_shaped(texts)
    if joined is None:
        return np.zeros((len(texts), _PAYLOAD_BYTES), dtype=np.uint8), np.zeros(len(texts), dtype=bool)
    return _decode_joined(joined, len(texts))


def _joined_strkey_shaped(values: Sequence[object]) -> bytes | None:
    """The values joined as ASCII bytes when every one is text of 56 ASCII characters, else None;
    checked on the joined text (in C), not value by value."""
    try:
        joined = "".join(values)  # type: ignore[arg-type]  # a value that is not text: TypeError
    except TypeError:
        return None
    if not joined.isascii() or not (np.fromiter(map(len, values), dtype=np.intp, count=len(values)) == 56).all():
        return None
    return joined.encode("ascii")


def _decode_joined(text: bytes, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`decode_many` of `count` strkeys of 56 ASCII characters each, joined."""
    payloads = np.zeros((count, _PAYLOAD_BYTES), dtype=np.uint8)
    digits = _DIGIT_OF[np.frombuffer(text, dtype=np.uint8)].reshape(count, 7, 8)
    valid = (digits != 255).all(axis=(1, 2))
    payloads[:] = _groups_of_digits(digits & 31).reshape(count, _PAYLOAD_BYTES)
    crcs = _crcs(payloads)
    valid &= (payloads[:, 33] == (crcs & 0xFF)) & (payloads[:, 34] == (crcs >> 8))
    return payloads, valid
