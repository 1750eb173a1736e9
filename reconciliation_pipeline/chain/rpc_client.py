"""The HTTP client under the SDK's `SorobanServer`: bounded responses, matched JSON-RPC ids, UTF-8.

`stellar_sdk`'s `RequestsClient.post` reads whatever the server sends, however large, and the
SDK never compares a response's `id` with the request's. A provider (or a proxy in front of
it) can answer with a body of any size, or with another request's response; this client reads
at most `max_response_bytes` and refuses a response whose id is not the request's.

A sweep posts thousands of requests, so the per-request work is kept small: the JSON body is
encoded once here, the body is read in large chunks, and what the environment says about a URL
(proxies, CA bundle, ~/.netrc credentials) is read on its first request, not on every one as
`requests` does by default. A POST goes straight to the urllib3 pool the session's adapter keeps
for the URL (its proxy and TLS settings as `requests` made them), with the headers the session
would send, prepared once per URL: building `requests`' response, hooks and cookie jar around
each of them cost more CPU than the request itself. What needs the session's own handling goes
through it: a redirect (the POST is made again by the session, which follows it; every method
this client carries is a read) and, once a provider has set a cookie, every later request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests import RequestException
from requests.cookies import extract_cookies_to_jar
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


@dataclass(frozen=True)
class _PostRoute:
    """How the session would POST JSON to one URL, worked out on its first request."""

    prepared: requests.PreparedRequest
    """The session's request for the URL (headers, auth), its body left out."""
    target: str
    """What the request line names: the path, or the whole URL through an HTTP proxy."""
    headers: Mapping[str, str]


@dataclass(frozen=True)
class _Answer:
    status_code: int
    headers: dict[str, str]
    content: bytes
    url: str
    """Where the answer came from (after any redirect)."""


class GuardedRequestsClient(RequestsClient):
    def __init__(self, *, max_response_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_response_bytes = max_response_bytes
        self._trust_environment = self._session.trust_env
        # The environment is applied per URL from `_environment_for`, read once.
        self._session.trust_env = False
        self._environments: dict[str, dict[str, Any]] = {}
        self._routes: dict[str, _PostRoute] = {}
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

    def _route_for(self, url: str) -> _PostRoute:
        route = self._routes.get(url)
        if route is None:
            settings = self._environment_for(url)
            prepared = self._session.prepare_request(
                requests.Request("POST", url, headers=_JSON_HEADERS, data=b"", auth=settings["auth"]))
            adapter = self._session.get_adapter(url)
            headers = {name: value for name, value in prepared.headers.items() if name.lower() != "content-length"}
            route = _PostRoute(prepared, adapter.request_url(prepared, settings.get("proxies") or {}), headers)
            with self._environments_lock:
                self._routes[url] = route
        return route

    def _post_pooled(self, url: str, body: bytes, json_data: dict[str, Any] | None) -> _Answer:
        """POST `body` through the adapter's urllib3 pool, as `HTTPAdapter.send` would."""
        route = self._route_for(url)
        settings = self._environment_for(url)
        verify, cert = settings.get("verify", True), settings.get("cert")
        adapter = self._session.get_adapter(url)
        try:
            # Per request, not kept: the pool manager may have closed a pool it evicted.
            pool = adapter.get_connection_with_tls_context(route.prepared, verify, proxies=settings.get("proxies"),
                                                           cert=cert)
            adapter.cert_verify(pool, url, verify, cert)
            answer = pool.urlopen(
                "POST", route.target, body=body, headers={**route.headers, "Content-Length": str(len(body))},
                redirect=False, assert_same_host=False, preload_content=False, decode_content=False,
                retries=adapter.max_retries, timeout=urllib3.Timeout(connect=self.post_timeout, read=self.post_timeout))
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise SdkConnectionError(error) from error
        complete = False
        try:
            if "set-cookie" in answer.headers:
                extract_cookies_to_jar(self._session.cookies, route.prepared, answer)
            if answer.get_redirect_location():
                complete = True  # the session reads it
                return self._follow_redirects(url, route, body, answer, json_data)
            content = _read_bounded(answer.stream(_READ_CHUNK_BYTES, decode_content=True), json_data,
                                    self.max_response_bytes)
            complete = True
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise SdkConnectionError(error) from error
        finally:
            if not complete:
                answer.close()  # its unread bytes must not reach the next request on this connection
            answer.release_conn()
        return _Answer(answer.status, dict(answer.headers), content, url)

    def _follow_redirects(self, url: str, route: _PostRoute, body: bytes, answer: urllib3.BaseHTTPResponse,
                          json_data: dict[str, Any] | None) -> _Answer:
        """The rest of a redirected POST, followed by the session as its own request would be."""
        prepared = route.prepared.copy()
        prepared.prepare_body(body, None)
        settings = self._environment_for(url)
        adapter = self._session.get_adapter(url)
        try:
            hops = self._session.resolve_redirects(
                adapter.build_response(prepared, answer), prepared, stream=True, timeout=self.post_timeout,
                verify=settings.get("verify", True), cert=settings.get("cert"), proxies=settings.get("proxies"))
            response = list(hops)[-1]
            try:
                content = _read_bounded(response.iter_content(chunk_size=_READ_CHUNK_BYTES), json_data,
                                        self.max_response_bytes)
            finally:
                response.close()
        except RequestException as error:
            raise SdkConnectionError(error) from error
        return _Answer(response.status_code, dict(response.headers), content, response.url or "")

    def _post_by_session(self, url: str, body: bytes | dict[str, str] | None, headers: Mapping[str, str] | None,
                         json_data: dict[str, Any] | None) -> _Answer:
        try:
            response = self._session.post(url, data=body, headers=headers, timeout=self.post_timeout, stream=True,
                                          **self._environment_for(url))
            try:
                content = _read_bounded(response.iter_content(chunk_size=_READ_CHUNK_BYTES), json_data,
                                        self.max_response_bytes)
            finally:
                response.close()
        except RequestException as error:
            raise SdkConnectionError(error) from error
        return _Answer(response.status_code, dict(response.headers), content, response.url)

    def get(self, url: str, params: dict[str, str] | None = None, max_content_size: int | None = None) -> Response:
        try:
            response = self._session.get(url, params=params, timeout=self.request_timeout, stream=True,
                                         **self._environment_for(url))
            try:
                content = _read_bounded(response.iter_content(chunk_size=_READ_CHUNK_BYTES), None, max_content_size)
            finally:
                response.close()
        except RequestException as error:
            raise SdkConnectionError(error) from error
        return Response(status_code=response.status_code, text=content.decode("utf-8"),
                        headers=dict(response.headers), url=response.url)

    def post(self, url: str, data: dict[str, str] | None = None, json_data: dict[str, Any] | None = None,
             *, loads: Callable[[str], Any] = json.loads) -> Response:
        """POST `json_data` and parse the answer with `loads` (json's unless the caller checks every
        value's type, as a faster parser may type values differently); a body `loads` refuses is
        parsed by json, and one json refuses is the SDK's HTTP error."""
        if json_data is None:
            answer = self._post_by_session(url, data, None, None)
        else:
            body = json.dumps(json_data, separators=(",", ":"), allow_nan=False).encode()
            # A provider's cookies are the session's to send.
            answer = (self._post_by_session(url, body, _JSON_HEADERS, json_data) if self._session.cookies
                      else self._post_pooled(url, body, json_data))
        # JSON is UTF-8 (RFC 8259), whatever a proxy's Content-Type says: requests reads a text/*
        # body without a charset as ISO-8859-1.
        text = answer.content.decode("utf-8")
        fields = {"status_code": answer.status_code, "text": text, "headers": answer.headers, "url": answer.url}
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


def _read_bounded(chunks: Iterator[bytes], json_data: dict[str, Any] | None, limit: int | None) -> bytes:
    read: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if limit is not None and size > limit:
            method = (json_data or {}).get("method", "request")
            raise ResponseTooLargeError(
                f"the {method} response exceeded RPC_MAX_RESPONSE_BYTES={limit:,}: ask "
                "for less per request (a smaller batch or page) or raise the limit")
        read.append(chunk)
    return b"".join(read)


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
