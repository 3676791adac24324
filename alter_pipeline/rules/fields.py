"""The whitelist of fields a rule may test, derived from the lake's Arrow schemas.

Rules name the warehouse's own column names (`orders` for order conditions, `order_items` under
`any_item` / `all_items`) plus two derived durations, `age` and `idle`. The SQL compiler only
ever interpolates names found here, so a rules file can never inject SQL through a field name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import pyarrow as pa

from alter_pipeline.lake import schemas


class Kind(StrEnum):
    INT = "integer"
    DECIMAL = "number"
    TEXT = "string"
    STATUS = "status"
    BOOL = "boolean"
    TIME = "timestamp"
    DURATION = "duration"


class Scope(StrEnum):
    ORDER = "orders"
    ITEM = "order_items"


# Operators each kind accepts. Durations are relative to a microsecond 'now', so equality on
# them would never be meant; statuses are an enum, so substring and regex tests add nothing.
OPERATORS: dict[Kind, tuple[str, ...]] = {
    Kind.INT: ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"),
    Kind.DECIMAL: ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"),
    Kind.TEXT: ("eq", "ne", "in", "not_in", "contains", "matches"),
    Kind.STATUS: ("eq", "ne", "in", "not_in"),
    Kind.BOOL: ("eq", "ne"),
    Kind.TIME: ("eq", "ne", "gt", "gte", "lt", "lte"),
    Kind.DURATION: ("gt", "gte", "lt", "lte"),
}
ALL_OPERATORS: tuple[str, ...] = (
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "matches",
)  # fmt: skip
LIST_OPERATORS = frozenset({"in", "not_in"})


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    scope: Scope
    sql_type: str  # what a bound parameter is cast to, so comparisons are exact
    scale: int = 0  # decimal places a DECIMAL value may have


def _kind(name: str, arrow_type: pa.DataType) -> tuple[Kind, str, int]:
    if name == "status":
        return Kind.STATUS, "VARCHAR", 0
    if pa.types.is_integer(arrow_type):
        return Kind.INT, "BIGINT", 0
    if pa.types.is_decimal(arrow_type):
        precision, scale = arrow_type.precision, arrow_type.scale
        return Kind.DECIMAL, f"DECIMAL({precision}, {scale})", scale
    if pa.types.is_boolean(arrow_type):
        return Kind.BOOL, "BOOLEAN", 0
    if pa.types.is_timestamp(arrow_type):
        return Kind.TIME, "TIMESTAMPTZ", 0
    return Kind.TEXT, "VARCHAR", 0


def _fields(schema: pa.Schema, scope: Scope) -> dict[str, Field]:
    found = {}
    for arrow_field in schema:
        kind, sql_type, scale = _kind(arrow_field.name, arrow_field.type)
        found[arrow_field.name] = Field(arrow_field.name, kind, scope, sql_type, scale)
    return found


ORDER_FIELDS: dict[str, Field] = _fields(schemas.ORDERS, Scope.ORDER) | {
    # now - created_at
    "age": Field("age", Kind.DURATION, Scope.ORDER, "TIMESTAMPTZ"),
    # now - the newest order_items.updated_at of the order (null when it has no items)
    "idle": Field("idle", Kind.DURATION, Scope.ORDER, "TIMESTAMPTZ"),
}
ITEM_FIELDS: dict[str, Field] = _fields(schemas.ORDER_ITEMS, Scope.ITEM)
FIELDS: dict[Scope, dict[str, Field]] = {Scope.ORDER: ORDER_FIELDS, Scope.ITEM: ITEM_FIELDS}


# ---- durations ----------------------------------------------------------------------------

_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1)}
_UNITS |= {"m": timedelta(minutes=1), "s": timedelta(seconds=1)}
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `1d12h`, `90m`, `2w`, `45s` -> timedelta; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"not a duration: {text!r} (write e.g. 30d, 12h, 1d12h, 90m)")
    total = timedelta()
    for amount, unit in zip(match.groups(), "wdhms", strict=True):
        if amount:
            total += int(amount) * _UNITS[unit]
    return total


def format_duration(value: timedelta) -> str:
    """A compact, human reading of a duration: `31d 4h`, `-2h 5m`, `12s`."""
    sign, value = ("-", -value) if value < timedelta() else ("", value)
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if secs or not parts:
        parts.append(f"{secs}s")
    return sign + " ".join(parts[:2])
