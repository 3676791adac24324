"""What the contract's fields mean, decided once for every reader of the API's JSON.

`api/models.py` (typed results), `lake/flatten.py` and `lake/fast_flatten.py` (the two ways
to table rows), `rules/` and `webhooks/` all read these rules from here, so they cannot drift
apart again. What the public API document and the emulator send:

* **Money** is a JSON number (`"value": 5`, `"value": 17.5`). It must reach the warehouse
  exactly as the API wrote it: the client parses JSON with ``parse_float=Decimal``, and a
  Python ``float`` is refused (`exact_number`) with an error saying so: a binary float has
  already lost the API's digits, and guessing them back would hide the bug that made it.
  The tables hold money as DECIMAL(18, 4) (`MONEY_QUANTUM`, `MONEY_LIMIT`) and measures
  (volume, weight, measureSize) as DECIMAL(18, 6) (`MEASURE_QUANTUM`, `MEASURE_LIMIT`).
* **Timestamps**: `createdAt` is ISO 8601 with `Z`; an item's `updatedAt` is
  `YYYY-MM-DD HH:MM:SS.ffffff` without a zone. A naive timestamp means UTC, and one with an
  offset is converted to UTC: every datetime leaving `as_utc` / `parse_timestamp` is aware
  and in UTC, whoever wrote it (the API, a rules file, a CLI flag, a Dagster config).
* **Ids** are JSON integers; a boolean is not an id (bool is an int subclass in Python).
* **Statuses** are the six of `ORDER_STATUSES`; anything else breaks the contract.
* **List vs detail shape**: a list entry (`GET /customer-orders`) has `isSeenByOwner` and
  names the design `customizerName`; a detail (`GET /customer-orders/:id`, `POST .../batch`)
  lacks `isSeenByOwner` and names it `designName`. `design_name` reads either;
  `merge_detail` fills what a detail lacks from what the list shape last said.
* **`{}` vs null**: for `measureSize` and a variant's `metadata`, null means unknown and `{}`
  means "known to be empty": the warehouse keeps them apart (NULL vs `'{}'`), and `[]` (a
  PHP backend's empty map) stays `'[]'`. For `productGroup`, `media` and the other objects
  the rows read fields from, null and `{}` both mean "no fields": their columns are NULL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from alter_pipeline.contract import ORDER_STATUSES

STATUSES: frozenset[str] = frozenset(ORDER_STATUSES)

MONEY_QUANTUM = Decimal("0.0001")  # DECIMAL(18, 4)
MONEY_LIMIT = Decimal(10) ** 14  # |value| below this fits DECIMAL(18, 4)
MEASURE_QUANTUM = Decimal("0.000001")  # DECIMAL(18, 6)
MEASURE_LIMIT = Decimal(10) ** 12  # |value| below this fits DECIMAL(18, 6)
QUANTITY_LIMIT = 2**40  # a quantity below this keeps per-order sums exact in int64

# Keys of the detail shape's gaps: API key -> the `orders` column it fills.
DETAIL_SHAPE_GAPS: Mapping[str, str] = {"isSeenByOwner": "is_seen_by_owner"}


def is_id(value: object) -> bool:
    """True for a JSON integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


def exact_number(value: object) -> Decimal:
    """`value` as an exact Decimal: an int or a Decimal. A float is refused (TypeError): its
    digits are no longer the API's (parse JSON with ``parse_float=Decimal``)."""
    if isinstance(value, Decimal):
        return value
    if is_id(value):
        return Decimal(value)  # type: ignore[arg-type]  # is_id proved it an int
    if isinstance(value, float):
        raise TypeError(f"expected an exact number, got the float {value!r} (not exact)")
    raise TypeError(f"expected a number, got {value!r}")


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC: a naive datetime is read as UTC, an aware one converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 text (`2026-02-09T01:55:48.000Z`, `2026-02-09 01:55:49.000000`) as an aware
    UTC datetime. ValueError when it is not one."""
    return as_utc(datetime.fromisoformat(text))


def design_name(order: Mapping[str, Any]) -> Any:
    """The design's name in either shape: `designName` (detail), else `customizerName` (list)."""
    return order.get("designName", order.get("customizerName"))


def merge_detail(detail: Mapping[str, Any], listed: Mapping[str, Any] | None) -> dict[str, Any]:
    """A detail-shape order (API keys) completed with what the list shape last said of it.

    `listed` is the order's list-shape record (API keys) or its `orders` row as the lake
    holds it (column names). Each key the detail shape lacks (`DETAIL_SHAPE_GAPS`) is taken
    from `listed` when the detail does not carry it; a key the detail carries always wins,
    even when null. The one rule sync, rules and both flatteners follow.
    """
    filled = {
        key: listed[key] if key in listed else listed[column]
        for key, column in DETAIL_SHAPE_GAPS.items()
        if listed is not None and key not in detail and (key in listed or column in listed)
    }
    # No copy when nothing is filled: a sync keeps thousands of these rows.
    return {**detail, **filled} if filled or not isinstance(detail, dict) else detail
