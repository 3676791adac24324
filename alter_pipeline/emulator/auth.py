"""Credential and scope checks of the two `x-alter-access-*` headers."""

from __future__ import annotations

import hmac
from collections.abc import Collection, Mapping

from alter_pipeline.contract import KEY_HEADER, TOKEN_HEADER
from alter_pipeline.emulator.config import Credentials
from alter_pipeline.emulator.errors import Forbidden, Unauthorized


def authenticate(headers: Mapping[str, str], credentials: Credentials) -> None:
    """Raise 401 unless both headers are present and match (compared in constant time)."""
    for header in (KEY_HEADER, TOKEN_HEADER):
        if not headers.get(header):
            raise Unauthorized(f"missing {header} header")
    key_ok = hmac.compare_digest(headers[KEY_HEADER].encode(), credentials.key.encode())
    token_ok = hmac.compare_digest(headers[TOKEN_HEADER].encode(), credentials.token.encode())
    if not (key_ok and token_ok):
        raise Unauthorized("invalid API credentials")


def authorize(scope: str | None, granted: Collection[str]) -> None:
    """Raise 403 naming `scope` unless the credential holds it (None: any credential will do)."""
    if scope is not None and scope not in granted:
        raise Forbidden(f"missing scope {scope}")
