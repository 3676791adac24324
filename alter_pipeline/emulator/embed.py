"""Embed-session tokens: HS256 JWTs with `kid` "1", valid for one hour.

Times are real (wall-clock) seconds, not the emulator's simulated clock: the token is checked
by real JWT libraries against the real time.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import jwt

from alter_pipeline.emulator.errors import BadRequest, Forbidden

EMBED_TTL_SECONDS = 3600
EMBED_KID = "1"
EMBED_ISSUER = "alter-public-api-emulator"


def normalise_origin(origin: str) -> str:
    """`scheme://host[:port]` in lower case; a path, query or credentials are refused."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest(f"origin must look like https://host[:port], got {origin!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise BadRequest(f"origin must be a bare scheme://host[:port], got {origin!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(origin: str, allowed: tuple[str, ...]) -> str:
    normalised = normalise_origin(origin)
    if normalised not in {a.rstrip("/").lower() for a in allowed}:
        raise Forbidden(f"origin {origin} is not on the storefront's allowed origins")
    return normalised


def issue_token(
    *, secret: str, tool: str, origin: str, mode: str, resource_id: int, storefront_id: int
) -> dict[str, Any]:
    """The `POST /embed/session` answer: {"token", "expiresIn", "kid", "mode"}."""
    issued = int(time.time())
    claims = {
        "iss": EMBED_ISSUER,
        "iat": issued,
        "exp": issued + EMBED_TTL_SECONDS,
        "jti": uuid.uuid4().hex,
        "mode": mode,
        "tool": tool,
        "origin": origin,
        "resourceId": resource_id,
        f"{mode}Id": resource_id,
        "storefrontId": storefront_id,
    }
    # No "typ": the documented token's header is exactly {"alg":"HS256","kid":"1"}.
    headers = {"kid": EMBED_KID, "typ": None}
    token = jwt.encode(claims, secret, algorithm="HS256", headers=headers)
    return {"token": token, "expiresIn": EMBED_TTL_SECONDS, "kid": EMBED_KID, "mode": mode}
