"""Client-side argument checks: a clear ValueError before anything is sent.

The server would refuse most of these with a 400 too, but only after a round trip, and its
message is not always as specific; checking here also keeps retries from repeating a request that
can never succeed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from alter_pipeline.contract import (
    EMBED_TOOLS,
    MAX_PAGE_SIZE,
    ORDER_SORT_FIELDS,
    ORDER_STATUSES,
    PREVIEW_SIZES,
    SORT_DIRECTIONS,
)


def object_id(value: Any, name: str = "id") -> int:
    """A positive integer id (bool is refused although it is an int subclass)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def offset(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"offset must be an integer >= 0, got {value!r}")
    return value


def limit(value: Any, *, minimum: int = 1) -> int:
    valid = isinstance(value, int) and not isinstance(value, bool)
    if not valid or not minimum <= value <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be an integer from {minimum} to {MAX_PAGE_SIZE}; {value!r}")
    return value


def choice(value: Any, allowed: Iterable[str], name: str) -> str:
    options = tuple(allowed)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {value!r}")
    return value


def order_status(value: Any) -> str:
    return choice(value, ORDER_STATUSES, "status")


def order_sort(value: Any) -> str:
    return choice(value, ORDER_SORT_FIELDS, "order_by")


def direction(value: Any) -> str:
    # Accept "asc"/"desc" for convenience; the wire wants upper case.
    normalized = value.upper() if isinstance(value, str) else value
    return choice(normalized, SORT_DIRECTIONS, "direction")


def preview_size(value: Any) -> str:
    return choice(value, PREVIEW_SIZES, "size")


def embed_tool(value: Any) -> str:
    return choice(value, EMBED_TOOLS, "tool")


def text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def origin(value: Any) -> str:
    """An origin as the embed settings list them: scheme and host (and port), no path."""
    parsed = urlparse(text(value, "origin"))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"origin must look like https://shop.example, got {value!r}")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise ValueError(f"origin must not have a path, query or fragment, got {value!r}")
    return f"{parsed.scheme}://{parsed.netloc}"


def quantity(value: Any, name: str = "quantity") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def exactly_one_resource(design_id: Any, order_id: Any) -> dict[str, int]:
    if (design_id is None) == (order_id is None):
        raise ValueError("give exactly one of design_id or order_id")
    if design_id is not None:
        return {"designId": object_id(design_id, "design_id")}
    return {"orderId": object_id(order_id, "order_id")}


def concurrency(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise ValueError(f"concurrency must be an integer from 1 to 64, got {value!r}")
    return value


def base_url(value: Any) -> str:
    parsed = urlparse(value if isinstance(value, str) else "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"base_url must be an http(s) URL, got {value!r}")
    return value.rstrip("/")
