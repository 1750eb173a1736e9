"""Keeping secrets out of other libraries' log lines.

A Slack webhook's secret is its URL path, and urllib3 logs the path of every
request it sends at DEBUG level ("POST /services/T.../B.../... HTTP/1.1"). A
deployment that turns on DEBUG logging would write the webhook into its logs.
Secrets the pipeline sends are registered here; a filter on the HTTP client
libraries' loggers replaces them with `[redacted]` in any record those
loggers emit.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

HTTP_CLIENT_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection", "requests")
REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6
"""Shorter strings are not secrets worth redacting (and would mangle unrelated lines)."""


class SecretRedactingFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, *secrets: str) -> None:
        with self._lock:
            self._secrets |= {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if not secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in sorted(secrets, key=len, reverse=True):  # the longest first: a URL before its path
            redacted = redacted.replace(secret, REDACTED)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = SecretRedactingFilter()
_installed = False
_install_lock = threading.Lock()


def keep_out_of_logs(*secrets: str) -> None:
    """Redact these strings from every HTTP client log record from now on."""
    global _installed
    with _install_lock:
        if not _installed:
            for name in HTTP_CLIENT_LOGGERS:
                logging.getLogger(name).addFilter(_FILTER)
            _installed = True
    _FILTER.add(*secrets)


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of a URL that carry its secret: the whole URL, its path and query."""
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return (url, tail) if tail not in ("", "/") else (url,)
