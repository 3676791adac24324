"""Wire details shared by the sync client and the async pager: requests, bodies, errors.

Nothing here logs or stores request headers; every piece of server text that ends up in an
exception passes through `Secrets.scrub` first, so a server that echoes the key back cannot leak
it into logs or tracebacks.
"""

from __future__ import annotations

import functools
import json
import re
import ssl
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from alter_pipeline.api import errors
from alter_pipeline.api.retry import RetryState, parse_retry_after
from alter_pipeline.contract import KEY_HEADER, SCOPES, TOKEN_HEADER

SNIPPET_CHARS = 200
_REDACTED = "[redacted]"
_HEADER_VALUE_OK = re.compile(r"[\x21-\x7e]+")  # visible ASCII, no spaces: what keys look like
_SCOPE_PATTERN = re.compile(
    "|".join(re.escape(s) for s in sorted(SCOPES, key=len, reverse=True)) + r"|\b[a-z]+:[a-z:]+\b"
)


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: building one costs ~0.1 s (it loads the CA
    bundle), and every client and every listing would otherwise build its own."""
    return httpx.create_ssl_context()


class Secrets:
    """The key and token, kept only to build auth headers and to scrub them out of text."""

    __slots__ = ("_key", "_token")

    def __init__(self, key: str, token: str) -> None:
        for name, value in (("api_key", key), ("api_token", token)):
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            # Never echo the value: a typo'd secret is still a secret.
            if value and not _HEADER_VALUE_OK.fullmatch(value):
                raise ValueError(f"{name} contains whitespace or non-ASCII characters")
        self._key = key
        self._token = token

    def __repr__(self) -> str:
        return "Secrets(<redacted>)"

    def headers(self) -> dict[str, str]:
        return {KEY_HEADER: self._key, TOKEN_HEADER: self._token}

    def scrub(self, text: str) -> str:
        # Longest first, so a token that contains the key is removed whole.
        for secret in sorted((self._key, self._token), key=len, reverse=True):
            if secret:
                text = text.replace(secret, _REDACTED)
        return text


@dataclass(frozen=True, slots=True)
class Call:
    """One logical API call (possibly several attempts)."""

    method: str
    path: str
    params: dict[str, str] | None = None
    json_body: Any = None
    auth: bool = True
    scope: str | None = None  # the contract's scope for this endpoint, for MissingScopeError

    def build(self, http: httpx.Client | httpx.AsyncClient, secrets: Secrets) -> httpx.Request:
        headers = secrets.headers() if self.auth else {}
        content = None
        if self.json_body is not None:
            headers["content-type"] = "application/json"
            content = json.dumps(self.json_body, separators=(",", ":")).encode()
        return http.build_request(
            self.method, self.path, params=self.params, headers=headers, content=content
        )


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class BodyIncomplete(Exception):
    """The status line and headers arrived but the body broke off (connection lost mid-body)."""

    def __init__(self, status: int, headers: httpx.Headers, partial: bytes, cause: Exception):
        super().__init__(type(cause).__name__)
        self.status = status
        self.headers = headers
        self.partial = partial
        self.cause = cause


def snippet(body: bytes, secrets: Secrets) -> str:
    return secrets.scrub(body[: SNIPPET_CHARS * 4].decode("utf-8", "replace"))[:SNIPPET_CHARS]


def is_html(reply: Reply) -> bool:
    """An HTML page (a login page, a proxy's error) sent instead of JSON, whatever its body."""
    return "html" in reply.content_type.lower()


def decode_json(reply: Reply, call: Call, secrets: Secrets) -> Any:
    """The body as JSON (floats as Decimal), or ProtocolError naming status and content type."""
    problem = None
    if is_html(reply):
        problem = "an HTML page instead of JSON"
    else:
        try:
            return json.loads(reply.body, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            problem = f"a body that is not valid JSON ({type(exc).__name__})"
    raise protocol_error(problem, reply.status, reply.content_type, reply.body, call, secrets)


@dataclass(frozen=True, slots=True)
class RetryIn:
    """Send the call again after `seconds`: its 2xx body was not JSON (see `decode_or_retry`)."""

    seconds: float


def decode_or_retry(state: RetryState, reply: Reply, call: Call, secrets: Secrets) -> Any:
    """The JSON of a 2xx reply, or `RetryIn` when the body is no JSON at all (an HTML page, an
    empty or cut body) and the call may be sent again; the `ProtocolError` once it may not."""
    try:
        return decode_json(reply, call, secrets)
    except errors.ProtocolError as error:
        problem = error
    delay = state.after_bad_body(f"a {reply.status} whose body is not JSON")
    if delay is None:
        raise problem  # outside the except block: nothing chained
    return RetryIn(delay)


def protocol_error(
    problem: str, status: int, content_type: str, body: bytes, call: Call, secrets: Secrets
) -> errors.ProtocolError:
    text = snippet(body, secrets)
    return errors.ProtocolError(
        f"server sent {problem}; content type {content_type or '(none)'!r}, body starts {text!r}",
        content_type=content_type or None,
        snippet=text,
        status=status,
        method=call.method,
        path=call.path,
    )


def server_message(reply: Reply, secrets: Secrets) -> str:
    """The server's explanation: `message` (or `error`) of a JSON body, else the body's start."""
    try:
        data = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            value = data.get(key)
            if isinstance(value, list):  # some frameworks send a list of validation messages
                value = "; ".join(map(str, value))
            if value:
                return _one_line(secrets.scrub(str(value)))[: SNIPPET_CHARS * 2]
    if is_html(reply) or reply.body.lstrip()[:1] == b"<":
        # A proxy's or web server's error page: its title (or text) says it, not its markup.
        page = secrets.scrub(reply.body[: SNIPPET_CHARS * 20].decode("utf-8", "replace"))
        title = _HTML_TITLE.search(page)
        text = title.group(1) if title else _HTML_TAG.sub(" ", page)
        said = _one_line(text)[:SNIPPET_CHARS]
        return f"an HTML page {said!r} instead of the API's JSON (is the base URL right?)"
    return _one_line(snippet(reply.body, secrets)) or "(empty body)"


_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")


def _one_line(text: str) -> str:
    """Error messages are one line: a body's newlines and indentation collapse to spaces."""
    return " ".join(text.split())


def _scope_from(reply: Reply, message: str) -> str | None:
    try:
        data = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        for key in ("scope", "requiredScope", "missingScope", "required_scope"):
            if isinstance(data.get(key), str):
                return data[key]
    found = _SCOPE_PATTERN.search(message)
    return found.group(0) if found else None


def error_for(reply: Reply, call: Call, secrets: Secrets) -> errors.AlterAPIError:
    """The typed error for a non-2xx reply."""
    message = server_message(reply, secrets)
    where: dict[str, Any] = {"status": reply.status, "method": call.method, "path": call.path}
    status = reply.status
    if status == 401:
        return errors.AuthenticationError(f"authentication failed: {message}", **where)
    if status == 403:
        scope = _scope_from(reply, message) or call.scope
        named = f" (needs scope {scope!r})" if scope else ""
        return errors.MissingScopeError(f"forbidden{named}: {message}", scope=scope, **where)
    if status == 404:
        return errors.NotFoundError(f"not found: {message}", **where)
    if status == 429:
        retry_after = parse_retry_after(reply.headers.get("retry-after"))
        hint = f", retry after {retry_after:.1f}s" if retry_after is not None else ""
        return errors.RateLimitedError(
            f"rate limited{hint}: {message}", retry_after=retry_after, **where
        )
    if 400 <= status < 500:
        return errors.InvalidRequestError(f"request refused: {message}", **where)
    if status >= 500:
        return errors.ServerError(f"server error: {message}", **where)
    return protocol_error(
        f"an unexpected status {status}", status, reply.content_type, reply.body, call, secrets
    )


def transport_error(error: Exception, attempts: int, call: Call, secrets: Secrets) -> Exception:
    """The error to raise when a transport failure is final."""
    if isinstance(error, BodyIncomplete):
        return protocol_error(
            f"a truncated body ({type(error.cause).__name__} after "
            f"{len(error.partial)} bytes, {attempts} attempt(s))",
            error.status,
            error.headers.get("content-type", ""),
            error.partial,
            call,
            secrets,
        )
    if isinstance(error, httpx.DecodingError):
        return errors.ProtocolError(
            f"could not decode the response body: {secrets.scrub(str(error))}",
            method=call.method,
            path=call.path,
        )
    detail = secrets.scrub(str(error)) or "no detail"
    return errors.TransportError(
        f"{type(error).__name__} after {attempts} attempt(s): {detail}",
        method=call.method,
        path=call.path,
    )


def settle(
    state: RetryState, outcome: Reply | Exception, call: Call, secrets: Secrets
) -> Reply | float:
    """After one attempt: the reply to act on (any status), or seconds to wait before the next.

    Raises the final error when a transport failure is not to be retried. Called outside any
    `except` block, so the httpx exception (which holds the request) is not chained.
    """
    if isinstance(outcome, Reply):
        if 200 <= outcome.status < 300:
            return outcome
        retry_after = parse_retry_after(outcome.headers.get("retry-after"))
        delay = state.after_response(outcome.status, retry_after)
        return outcome if delay is None else delay
    cause = outcome.cause if isinstance(outcome, BodyIncomplete) else outcome
    delay = (
        state.after_error(cause, type(cause).__name__)
        if isinstance(cause, httpx.HTTPError)
        else None
    )
    if delay is None:
        raise transport_error(outcome, state.attempt, call, secrets)
    return delay


class Counters:
    """Thread-safe request counters; `snapshot()` gives a consistent, immutable reading."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._retries = 0
        self._pages = 0
        self._bytes = 0
        self._throttled = 0
        self._window: int | None = None
        self._pace: float | None = None
        self._settled_replies = -1

    def add(
        self,
        *,
        requests: int = 0,
        retries: int = 0,
        pages: int = 0,
        nbytes: int = 0,
        throttled: int = 0,
    ) -> None:
        with self._lock:
            self._requests += requests
            self._retries += retries
            self._pages += pages
            self._bytes += nbytes
            self._throttled += throttled

    def settle(self, window: int, pace: float | None, replies: int) -> None:
        """Where a listing's adaptive concurrency stands after `replies` replies (see
        paging/concurrency.py). The listing with the most replies is the one reported: a
        one-page listing after a long one says little about the API's limit."""
        with self._lock:
            if replies >= self._settled_replies:
                self._window, self._pace = window, pace
                self._settled_replies = replies

    def snapshot(self) -> ClientStats:
        with self._lock:
            return ClientStats(
                self._requests,
                self._retries,
                self._pages,
                self._bytes,
                self._throttled,
                self._window,
                self._pace,
            )

    @property
    def requests(self) -> int:
        return self.snapshot().requests

    @property
    def retries(self) -> int:
        return self.snapshot().retries

    @property
    def pages(self) -> int:
        return self.snapshot().pages

    @property
    def bytes(self) -> int:
        return self.snapshot().bytes

    def __repr__(self) -> str:
        return f"Counters({self.snapshot()})"


@dataclass(frozen=True, slots=True)
class ClientStats:
    """`requests`: HTTP attempts sent (retries included); `retries`: attempts after a failure;
    `pages`: listing pages fetched by the pagers; `bytes`: response body bytes received;
    `throttled`: 429 answers; `window` and `pace`: requests in flight and per second the
    longest listing settled on (None: no listing yet, or no pace needed)."""

    requests: int
    retries: int
    pages: int
    bytes: int
    throttled: int = 0
    window: int | None = None
    pace: float | None = None

    def as_dict(self) -> dict[str, int | float | None]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "pages": self.pages,
            "bytes": self.bytes,
            "throttled": self.throttled,
            "window": self.window,
            "pace": self.pace,
        }
