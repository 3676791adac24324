"""Validation of query strings, path ids and JSON bodies, as a strict real server does it.

Every problem raises `BadRequest` with a message naming the parameter or field and what was
expected. Unknown query parameters are ignored (as most servers do); a repeated parameter
takes its last value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from alter_pipeline.contract import (
    EMBED_TOOLS,
    MAX_PAGE_SIZE,
    ORDER_SORT_FIELDS,
    ORDER_STATUSES,
    SORT_DIRECTIONS,
)
from alter_pipeline.emulator.errors import BadRequest
from alter_pipeline.emulator.store import OrderQuery, ProductQuery

PRODUCT_SORT_FIELDS: tuple[str, ...] = ("id", "name", "created_at")
MAX_BATCH_IDS = 100
_INT32_MAX = 2**31 - 1


def _integer(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip(), 10) if raw.strip().lstrip("-").isdigit() else None
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        bounds = f"between {low} and {high}" if high < _INT32_MAX else f">= {low}"
        raise BadRequest(f"{name} must be an integer {bounds}, got {raw!r}")
    return value


def _choice(name: str, raw: str, allowed: tuple[str, ...], *, fold: bool = False) -> str:
    value = raw.upper() if fold else raw
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return value


def path_id(name: str, raw: str) -> int:
    """A positive integer id from the URL path."""
    return _integer(name, raw, 1, _INT32_MAX)


def _page(query: Mapping[str, str], default_limit: int) -> tuple[int, int]:
    offset = _integer("offset", query["offset"], 0, _INT32_MAX) if "offset" in query else 0
    limit = (
        _integer("limit", query["limit"], 1, MAX_PAGE_SIZE) if "limit" in query else default_limit
    )
    return offset, limit


def order_query(query: Mapping[str, str]) -> OrderQuery:
    defaults = OrderQuery()
    offset, limit = _page(query, defaults.limit)
    status = query.get("order_status") or None
    if status is not None:
        _choice("order_status", status, ORDER_STATUSES)
    category = query.get("category_id") or None
    return OrderQuery(
        name=query.get("name") or None,
        category_id=_integer("category_id", category, 1, _INT32_MAX) if category else None,
        status=status,
        offset=offset,
        limit=limit,
        order_by=_choice("order_by", query.get("order_by", defaults.order_by), ORDER_SORT_FIELDS),
        direction=_choice(
            "direction", query.get("direction", defaults.direction), SORT_DIRECTIONS, fold=True
        ),
    )


def product_query(query: Mapping[str, str]) -> ProductQuery:
    defaults = ProductQuery()
    offset, limit = _page(query, defaults.limit)
    customizer = query.get("customizer") or None
    if customizer is not None:
        flag = _choice("customizer", customizer.lower(), ("true", "false", "1", "0"))
        customizer_flag: bool | None = flag in ("true", "1")
    else:
        customizer_flag = None
    return ProductQuery(
        name=query.get("name") or None,
        customizer=customizer_flag,
        offset=offset,
        limit=limit,
        order_by=_choice("order_by", query.get("order_by", defaults.order_by), PRODUCT_SORT_FIELDS),
        direction=_choice(
            "direction", query.get("direction", defaults.direction), SORT_DIRECTIONS, fold=True
        ),
    )


# ---- JSON bodies -----------------------------------------------------------------------------


def json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise BadRequest("request body must be a JSON object, got an empty body")
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"malformed JSON body: {error}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"request body must be a JSON object, got {_type(value)}")
    return value


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}.get(
        type(value), "object"
    )


def _body_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        shown = json.dumps(value) if not isinstance(value, dict | list) else _type(value)
        raise BadRequest(f"{name} must be an integer >= {low}, got {shown}")
    return value


def batch_ids(body: dict[str, Any]) -> list[int]:
    ids = body.get("customerOrderIds")
    if not isinstance(ids, list):
        raise BadRequest(f"customerOrderIds must be an array of order ids, got {_type(ids)}")
    if len(ids) > MAX_BATCH_IDS:
        raise BadRequest(f"customerOrderIds may hold at most {MAX_BATCH_IDS} ids, got {len(ids)}")
    return [_body_int(f"customerOrderIds[{i}]", value) for i, value in enumerate(ids)]


def status_change(body: dict[str, Any]) -> str:
    status = body.get("status")
    if not isinstance(status, str):
        raise BadRequest(f"status must be a string, got {_type(status)}")
    return _choice("status", status, ORDER_STATUSES)


def quantity_changes(body: dict[str, Any]) -> dict[int, int]:
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise BadRequest("items must be a non-empty array of {orderDetailId, quantity}")
    changes: dict[int, int] = {}
    for index, entry in enumerate(items):
        if not isinstance(entry, dict):
            raise BadRequest(f"items[{index}] must be an object, got {_type(entry)}")
        detail_id = _body_int(f"items[{index}].orderDetailId", entry.get("orderDetailId"))
        if detail_id in changes:
            raise BadRequest(f"items[{index}].orderDetailId {detail_id} is repeated")
        changes[detail_id] = _body_int(f"items[{index}].quantity", entry.get("quantity"))
    return changes


def quantity_all(body: dict[str, Any]) -> int:
    return _body_int("quantity", body.get("quantity"))


def embed_request(body: dict[str, Any]) -> tuple[str, str, str, int]:
    """(tool, origin, mode, resource id) of `POST /embed/session`."""
    tool = body.get("tool")
    if not isinstance(tool, str):
        raise BadRequest(f"tool must be one of {', '.join(EMBED_TOOLS)}, got {_type(tool)}")
    _choice("tool", tool, EMBED_TOOLS)
    origin = body.get("origin")
    if not isinstance(origin, str) or not origin:
        raise BadRequest(f"origin must be a non-empty string, got {_type(origin)}")
    has_design, has_order = body.get("designId") is not None, body.get("orderId") is not None
    if has_design == has_order:
        raise BadRequest("provide exactly one of designId and orderId")
    if has_design:
        return tool, origin, "design", _body_int("designId", body["designId"])
    return tool, origin, "order", _body_int("orderId", body["orderId"])
