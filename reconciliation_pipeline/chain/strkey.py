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
