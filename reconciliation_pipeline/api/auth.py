"""Bearer tokens with scopes, compared in constant time.

Tokens come from environment variables (`RECON_API_READ_TOKENS`,
`RECON_API_LAUNCH_TOKENS`; several per variable, comma-separated, so a token
can be rotated without downtime). Only their SHA-256 digests are kept, and a
presented token is compared with every one of them by `hmac.compare_digest`
on the digests: how long a check takes depends neither on where a guess first
differs nor on its length, nor on which token matched. No token is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from enum import StrEnum

MIN_TOKEN_LENGTH = 24


class Scope(StrEnum):
    READ = "read"
    """List discrepancies and incidents, read runs."""
    LAUNCH = "launch"
    """Launch reconciliations (and read)."""


class TokenConfigError(ValueError):
    """A token variable holds something no token should be (the message never quotes it)."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    def __init__(self, read: Iterable[str], launch: Iterable[str]) -> None:
        entries: list[tuple[bytes, frozenset[Scope]]] = []
        for variable, tokens, scopes in (("RECON_API_READ_TOKENS", read, frozenset({Scope.READ})),
                                         ("RECON_API_LAUNCH_TOKENS", launch, frozenset({Scope.READ, Scope.LAUNCH}))):
            for number, token in enumerate(tokens, start=1):
                if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
                    raise TokenConfigError(f"token {number} of {variable} must be at least {MIN_TOKEN_LENGTH} "
                                           "characters with no surrounding space")
                entries.append((_digest(token), scopes))
        if not entries:
            raise TokenConfigError("no API token: set RECON_API_READ_TOKENS and/or RECON_API_LAUNCH_TOKENS")
        self._entries = tuple(entries)

    @classmethod
    def from_variables(cls, read: str, launch: str) -> Tokens:
        def split(value: str) -> list[str]:
            return [t for t in (part.strip() for part in value.split(",")) if t]

        return cls(split(read), split(launch))

    def scopes_of(self, presented: str) -> frozenset[Scope] | None:
        """The scopes of a presented token, or None when it is no token of ours."""
        digest = _digest(presented)
        found: frozenset[Scope] = frozenset()
        matched = False
        for known, scopes in self._entries:  # every entry, whatever matched: no early exit
            same = hmac.compare_digest(digest, known)
            matched |= same
            found = found | scopes if same else found
        return found if matched else None
