"""Errors of the emulated API. Each carries its HTTP status and a message naming the problem;
the app renders them as `{"message": "..."}`. The store raises them too, so in-process callers
(tests, live mode) get the same checks as HTTP clients.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405


class Conflict(ApiError):
    status = 409


class TooManyRequests(ApiError):
    status = 429
