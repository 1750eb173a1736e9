"""The HTTP client under the SDK's `SorobanServer`: bounded responses, matched JSON-RPC ids, UTF-8.

`stellar_sdk`'s `RequestsClient.post` reads whatever the server sends, however large, and the
SDK never compares a response's `id` with the request's. A provider (or a proxy in front of
it) can answer with a body of any size, or with another request's response; this client reads
at most `max_response_bytes` and refuses a response whose id is not the request's.

A sweep posts thousands of requests, so the per-request work is kept small: the JSON body is
encoded once here, the body is read in large chunks, and what the environment says about a URL
(proxies, CA bundle, ~/.netrc credentials) is read on its first request, not on every one as
`requests` does by default.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import requests
from requests import RequestException
from requests.utils import get_netrc_auth
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.client.response import Response
from stellar_sdk.exceptions import ConnectionError as SdkConnectionError

_READ_CHUNK_BYTES = 1 << 20
_JSON_HEADERS = {"Content-Type": "application/json"}


class ResponseTooLargeError(RuntimeError):
    """The RPC sent more than the configured limit: the same request would again (not retried)."""


class ResponseIdMismatchError(RuntimeError):
    """The response's JSON-RPC id is not the request's (a proxy mix-up: retried)."""


class GuardedRequestsClient(RequestsClient):
    def __init__(self, *, max_response_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_response_bytes = max_response_bytes
        self._trust_environment = self._session.trust_env
        # The environment is applied per URL from `_environment_for`, read once.
        self._session.trust_env = False
        self._environments: dict[str, dict[str, Any]] = {}
        self._environments_lock = threading.Lock()

    def _environment_for(self, url: str) -> dict[str, Any]:
        """The proxies, `verify`, client cert and netrc auth `requests` would take from the
        environment for `url` (nothing when the session does not trust it)."""
        with self._environments_lock:
            settings = self._environments.get(url)
            if settings is None:
                if self._trust_environment:
                    with requests.Session() as environment:
                        settings = environment.merge_environment_settings(url, {}, None, None, None)
                    settings.pop("stream", None)
                    settings["auth"] = get_netrc_auth(url)
                else:
                    settings = {"auth": None}
                self._environments[url] = settings
            return settings

    def get(self, url: str, params: dict[str, str] | None = None, max_content_size: int | None = None) -> Response:
        try:
            response = self._session.get(url, params=params, timeout=self.request_timeout, stream=True,
                                         **self._environment_for(url))
            content = self._read_bounded(response, None, max_content_size)
        except RequestException as error:
            raise SdkConnectionError(error) from error
        return Response(status_code=response.status_code, text=content.decode("utf-8"),
                        headers=dict(response.headers), url=response.url)

    def post(self, url: str, data: dict[str, str] | None = None, json_data: dict[str, Any] | None = None,
             *, loads: Callable[[str], Any] = json.loads) -> Response:
        """POST `json_data` and parse the answer with `loads` (json's unless the caller checks every
        value's type, as a faster parser may type values differently); a body `loads` refuses is
        parsed by json, and one json refuses is the SDK's HTTP error."""
        body: bytes | dict[str, str] | None = data
        headers = None
        if json_data is not None:
            body = json.dumps(json_data, separators=(",", ":"), allow_nan=False).encode()
            headers = _JSON_HEADERS
        try:
            response = self._session.post(url, data=body, headers=headers, timeout=self.post_timeout, stream=True,
                                          **self._environment_for(url))
            content = self._read_bounded(response, json_data, self.max_response_bytes)
        except RequestException as error:
            raise SdkConnectionError(error) from error
        # JSON is UTF-8 (RFC 8259), whatever a proxy's Content-Type says: requests reads a text/*
        # body without a charset as ISO-8859-1.
        text = content.decode("utf-8")
        fields = {"status_code": response.status_code, "text": text, "headers": dict(response.headers),
                  "url": response.url}
        try:
            parsed = loads(text)
        except ValueError:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                return Response(**fields)  # not JSON: the SDK reports the HTTP error itself
        if json_data is not None and "id" in json_data:
            _check_id(json_data["id"], parsed)
        return ParsedResponse(body=parsed, **fields)

    @staticmethod
    def _read_bounded(response: requests.Response, json_data: dict[str, Any] | None, limit: int | None) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=_READ_CHUNK_BYTES):
                size += len(chunk)
                if limit is not None and size > limit:
                    method = (json_data or {}).get("method", "request")
                    raise ResponseTooLargeError(
                        f"the {method} response exceeded RPC_MAX_RESPONSE_BYTES={limit:,}: ask "
                        "for less per request (a smaller batch or page) or raise the limit")
                chunks.append(chunk)
        finally:
            response.close()
        return b"".join(chunks)


class ParsedResponse(Response):
    """A response whose JSON body was parsed here (to check its id): the SDK reads it without
    parsing a 200-entry body a second time."""

    def __init__(self, *, body: Any, **fields: Any) -> None:
        super().__init__(**fields)
        self._body = body

    def json(self) -> Any:
        return self._body


def _check_id(sent: object, body: Any) -> None:
    # JSON-RPC answers a request it could not parse with id null: that is an error, not a mix-up.
    if isinstance(body, dict) and "id" in body and body["id"] != sent and not (body["id"] is None and "error" in body):
        raise ResponseIdMismatchError(f"the RPC answered request id {sent!r} with the response of id {body['id']!r}")
