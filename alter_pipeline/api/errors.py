"""Typed errors of the Alter API client.

Every error the client raises about the API is an `AlterAPIError`; bad arguments are plain
`ValueError`s raised before anything is sent. Messages say what happened and where
(`GET /customer-orders -> 403`) and never contain the API key or token: the client scrubs both
from any server text before it builds an error (see `Secrets` in `_wire.py`).
"""

from __future__ import annotations


class AlterAPIError(Exception):
    """Base of every API failure. `status` is the HTTP status when a response arrived."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path

    def __str__(self) -> str:
        if self.method is None:
            return self.message
        outcome = f" -> {self.status}" if self.status is not None else ""
        return f"{self.message} ({self.method} {self.path}{outcome})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthenticationError(AlterAPIError):
    """401: the key or token is missing, wrong or revoked."""


class MissingScopeError(AlterAPIError):
    """403: the credential lacks a scope. `scope` names it when the server or the contract does."""

    def __init__(
        self,
        message: str,
        *,
        scope: str | None = None,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, status=status, method=method, path=path)
        self.scope = scope


class NotFoundError(AlterAPIError):
    """404: no such order, product or preview for this storefront."""


class InvalidRequestError(AlterAPIError):
    """400, 409, 422 (and any other unexpected 4xx): the server refused the request as sent."""


class RateLimitedError(AlterAPIError):
    """429 that outlasted the retry policy. `retry_after` is the server's hint in seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, status=status, method=method, path=path)
        self.retry_after = retry_after


class ServerError(AlterAPIError):
    """5xx that outlasted the retry policy (or was not retried: see the retry safety table)."""


class TransportError(AlterAPIError):
    """No usable response: connection refused or reset, DNS failure or timeout, after retries."""


class ProtocolError(AlterAPIError):
    """A response the contract does not allow: non-JSON, HTML, truncated or mis-shaped body.

    Carries the status, the content type and the first 200 characters of the body.
    """

    def __init__(
        self,
        message: str,
        *,
        content_type: str | None = None,
        snippet: str = "",
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, status=status, method=method, path=path)
        self.content_type = content_type
        self.snippet = snippet


class IncompleteListingError(AlterAPIError):
    """A paged listing could not be proven complete (rows changed faster than it could re-read).

    `expected` is the server's latest `total`, `received` the unique ids yielded, `holes` the
    id ranges that stayed unverified.
    """

    def __init__(self, message: str, *, expected: int, received: int, holes: int = 0) -> None:
        super().__init__(message)
        self.expected = expected
        self.received = received
        self.holes = holes


__all__ = [
    "AlterAPIError",
    "AuthenticationError",
    "IncompleteListingError",
    "InvalidRequestError",
    "MissingScopeError",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "ServerError",
    "TransportError",
]
