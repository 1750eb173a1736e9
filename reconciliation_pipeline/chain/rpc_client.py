"""The HTTP client under the SDK's `SorobanServer`: bounded responses, matched JSON-RPC ids, UTF-8.

`stellar_sdk`'s `RequestsClient.post` reads whatever the server sends, however large, and the
SDK never compares a response's `id` with the request's. A provider (or a proxy in front of
it) can answer with a body of any size, or with another request's response; this client reads
at most `max_response_bytes` and refuses a response whose id is not the request's.
"""

from __future__ import annotations

import json
from typing import Any

from requests import RequestException
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.client.response import Response
from stellar_sdk.exceptions import ConnectionError as SdkConnectionError
from stellar_sdk.exceptions import ContentSizeLimitExceededError


class ResponseTooLargeError(RuntimeError):
    """The RPC sent more than the configured limit: the same request would again (not retried)."""


class ResponseIdMismatchError(RuntimeError):
    """The response's JSON-RPC id is not the request's (a proxy mix-up: retried)."""


class GuardedRequestsClient(RequestsClient):
    def __init__(self, *, max_response_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_response_bytes = max_response_bytes

    def post(self, url: str, data: dict[str, str] | None = None,
             json_data: dict[str, Any] | None = None) -> Response:
        try:
            response = self._session.post(url, data=data, json=json_data, timeout=self.post_timeout, stream=True)
            # JSON is UTF-8 (RFC 8259), whatever a proxy's Content-Type says: requests reads a text/*
            # body without a charset as ISO-8859-1.
            response.encoding = "utf-8"
            text = self._read_with_limit(response, self.max_response_bytes)
        except ContentSizeLimitExceededError as error:
            method = (json_data or {}).get("method", "request")
            raise ResponseTooLargeError(
                f"the {method} response exceeded RPC_MAX_RESPONSE_BYTES={self.max_response_bytes:,}: ask for less "
                "per request (a smaller batch or page) or raise the limit") from error
        except RequestException as error:
            raise SdkConnectionError(error) from error
        fields = {"status_code": response.status_code, "text": text, "headers": dict(response.headers),
                  "url": response.url}
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            return Response(**fields)  # not JSON: the SDK reports the HTTP error itself
        if json_data is not None and "id" in json_data:
            _check_id(json_data["id"], body)
        return ParsedResponse(body=body, **fields)


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
