"""Property tests: any valid order round-trips through JSON and flattening to rows and back,
money exact; a money comparison written in a rules file holds exactly when Decimal
arithmetic says it does, in Python and in SQL alike.

tests/lake and tests/rules hold the other properties (money of generated pages, SQL against
Python evaluation of random conditions); these add what they lack: arbitrary order shapes,
unknown fields, nulls, and the rules file's number literals.
"""

from __future__ import annotations

import json
import operator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from alter_pipeline.contract import ORDER_STATUSES
from alter_pipeline.lake import schemas
from alter_pipeline.lake.flatten import flatten_orders
from alter_pipeline.rules import parse_rules
from alter_pipeline.rules.compile import compile_rule
from alter_pipeline.rules.evaluate import OrderFacts, matches

ids = st.integers(1, 2**31 - 1)
texts = st.text(max_size=12)
counts = st.none() | st.integers(0, 10**6)


def decimals(places: int, digits: int = 14) -> st.SearchStrategy[Decimal]:
    """Exact decimals with at most `places` decimal places and `digits` integer digits."""
    return st.integers(0, places).flatmap(
        lambda k: st.integers(-(10 ** (digits + k)) + 1, 10 ** (digits + k) - 1).map(
            lambda n: Decimal(n).scaleb(-k)
        )
    )


def moments(with_zone: bool) -> st.SearchStrategy[str]:
    stamps = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31))
    if with_zone:  # the orders' createdAt: ISO 8601, milliseconds, Z
        return stamps.map(lambda d: d.isoformat(timespec="milliseconds") + "Z")
    return stamps.map(lambda d: d.isoformat(sep=" ", timespec="microseconds"))  # updatedAt


names = st.fixed_dictionaries({"pl": texts, "en": texts})
money = st.none() | st.fixed_dictionaries(
    {"value": st.none() | decimals(4), "currency": st.sampled_from(["EUR", "PLN", "USD"])}
)
extras = st.dictionaries(st.sampled_from(["note", "giftWrap", "source"]), st.none() | texts | ids)


def named(**more: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any] | None]:
    return st.none() | st.fixed_dictionaries({"id": ids, "name": st.none() | names, **more})


variants = st.none() | st.fixed_dictionaries(
    {
        "id": ids,
        "metadata": st.none() | st.dictionaries(texts, texts | ids, max_size=3),
        "minOrderQuantity": counts,
        "processingTime": counts,
        "stockQuantity": counts,
        "volume": st.none() | decimals(6, 8),
        "weight": st.none() | decimals(6, 8),
    }
)
items = st.fixed_dictionaries(
    {
        "model3d": st.none() | st.fixed_dictionaries({"id": ids}),
        "size": named(measureSize=st.dictionaries(st.sampled_from("WHD"), decimals(3, 4))),
        "material": named(),
        "printType": named(),
        "color": named(hex=st.none() | st.from_regex(r"#[0-9A-F]{6}", fullmatch=True)),
        "variant": variants,
        "unitPrice": money,
        "totalPrice": money,
        "quantity": counts,
        "updatedAt": st.none() | moments(with_zone=False),
    }
)
orders = st.fixed_dictionaries(
    {
        "id": ids,
        "customizerId": st.none() | ids,
        "orderStatus": st.sampled_from(ORDER_STATUSES),
        "createdAt": st.none() | moments(with_zone=True),
        "customizerOrderURL": st.none() | texts,
        "productGroup": named(),
        "totalPrice": money,
        "productItems": st.lists(items, max_size=4),
    },
    optional={"isSeenByOwner": st.none() | st.booleans()},
)
design_keys = st.sampled_from(["designName", "customizerName"])  # detail shape, list shape


def wire(value: Any) -> str:
    """JSON text as the API sends it: decimals as plain numbers."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{wire(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(wire(v) for v in value) + "]"
    return json.dumps(value)


# ---- rows back to a record ----------------------------------------------------------------------


def _name(en: str | None, pl: str | None) -> dict[str, Any] | None:
    return None if en is None and pl is None else {"pl": pl, "en": en}


def _named(row: dict[str, Any], prefix: str, **more: Any) -> dict[str, Any] | None:
    name = _name(row[f"{prefix}_name_en"], row[f"{prefix}_name_pl"])
    found = {"id": row[f"{prefix}_id"], "name": name, **more}
    return None if all(v is None for v in found.values()) else found


def _money(value: Decimal | None, currency: str | None) -> dict[str, Any] | None:
    return None if value is None and currency is None else {"value": value, "currency": currency}


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text, parse_float=Decimal)


def _item(row: dict[str, Any]) -> dict[str, Any]:
    extra = _json(row["extra"]) or {}
    variant = {"id": row["variant_id"], "metadata": _json(row["variant_metadata"]),
               "minOrderQuantity": row["min_order_quantity"],
               "processingTime": row["processing_time"], "stockQuantity": row["stock_quantity"],
               "volume": row["volume"], "weight": row["weight"]}  # fmt: skip
    variant |= {k.removeprefix("variant."): v for k, v in extra.items() if k.startswith("variant.")}
    return {
        "id": row["order_item_id"],
        "model3d": None if row["model3d_id"] is None else {"id": row["model3d_id"]},
        "size": _named(row, "size", measureSize=_json(row["measure_size"])),
        "material": _named(row, "material"),
        "printType": _named(row, "print_type"),
        "color": _named(row, "color", hex=row["color_hex"]),
        "variant": None if all(v is None for v in variant.values()) else variant,
        "unitPrice": _money(row["unit_price_value"], row["unit_price_currency"]),
        "totalPrice": _money(row["total_price_value"], row["total_price_currency"]),
        "quantity": row["quantity"],
        "updatedAt": row["updated_at"],
        **{k: v for k, v in extra.items() if not k.startswith("variant.")},
    }


def unflatten(order: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    group = {key.replace("product_group", "group"): order[key] for key in order
             if key.startswith("product_group")}  # fmt: skip
    record = {
        "id": order["order_id"],
        "customizerId": order["customizer_id"],
        "orderStatus": order["status"],
        "createdAt": order["created_at"],
        "customizerOrderURL": order["customizer_order_url"],
        "designName": order["design_name"],
        "productGroup": _named(group, "group"),
        "totalPrice": _money(order["total_value"], order["total_currency"]),
        "isSeenByOwner": order["is_seen_by_owner"],
        "productItems": [_item(row) for row in rows],
        **(_json(order["extra"]) or {}),
    }
    return record


# Kept as JSON text of what the API sent: `{}` and null stay apart there.
JSON_TEXT_KEYS = frozenset({"measureSize", "metadata"})


def canonical(raw: dict[str, Any], design_key: str) -> dict[str, Any]:
    """The record as the rows can tell it: timestamps as UTC datetimes, objects without any
    value as null (but for JSON-text fields), the design name under one key, isSeenByOwner
    null when absent."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: v if k in JSON_TEXT_KEYS else clean(v) for k, v in value.items()}
            return None if value and all(v is None for v in value.values()) else value or None
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    record = clean(raw)
    record["designName"] = record.pop(design_key, None)
    record.setdefault("isSeenByOwner", None)
    record["createdAt"] = _utc(record["createdAt"])
    for item in record["productItems"]:
        item["updatedAt"] = _utc(item["updatedAt"])
    return record


def _utc(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@settings(max_examples=100, deadline=None)
@given(raw=orders, design_key=design_keys, design=st.none() | texts, extra=extras,
       item_ids=st.lists(ids, min_size=4, max_size=4, unique=True))  # fmt: skip
def test_any_valid_order_round_trips_to_rows_and_back_with_exact_money(
    raw: dict[str, Any], design_key: str, design: str | None, extra: dict, item_ids: list[int]
) -> None:
    raw = {**raw, design_key: design, **extra}
    for item, item_id in zip(raw["productItems"], item_ids, strict=False):
        item["id"] = item_id
    flat = flatten_orders([json.loads(wire(raw), parse_float=Decimal)])
    assert not flat.rejected, flat.rejected
    (order,) = flat.orders.to_pylist()
    rows = flat.items.to_pylist()
    assert order["item_count"] == len(rows)
    assert order["total_quantity"] == sum(r["quantity"] or 0 for r in rows)
    assert canonical(unflatten(order, rows), "designName") == canonical(raw, design_key)


# ---- rules: money literals are exact -----------------------------------------------------------

OPERATORS = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "gte": operator.ge,
             "lt": operator.lt, "lte": operator.le}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    op=st.sampled_from(sorted(OPERATORS)),
    literal=decimals(4, 6),
    totals=st.lists(st.none() | decimals(4, 6), min_size=1, max_size=6),
)
def test_a_money_comparison_in_a_rules_file_holds_exactly_as_decimals_say(
    op: str, literal: Decimal, totals: list[Decimal | None]
) -> None:
    ruleset = parse_rules(
        "rules:\n  - id: r\n    when:\n      status: shopping_cart\n"
        f"      total_value: {{{op}: {literal}}}\n    then:\n      set_status: cancelled\n"
    )
    (rule,) = ruleset.rules
    rows = [_order_row(n, total) for n, total in enumerate(totals, start=1)]
    expected = [r["order_id"] for r in rows if r["total_value"] is not None
                and OPERATORS[op](r["total_value"], literal)]  # fmt: skip
    python = [r["order_id"] for r in rows if matches(rule.when, OrderFacts(r, ()), _NOW)]
    assert python == expected
    _SQL.register("orders", pa.Table.from_pylist(rows, schema=schemas.ORDERS))
    query = compile_rule(rule, _NOW)
    assert sorted(r[0] for r in _SQL.execute(query.sql, query.params).fetchall()) == expected


_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_SQL = duckdb.connect(":memory:")  # one for every example: connecting costs more than a query
_SQL.register("order_items", schemas.ORDER_ITEMS.empty_table())


def _order_row(order_id: int, total: Decimal | None) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(schemas.ORDERS.names)
    return row | {"order_id": order_id, "status": "shopping_cart", "total_value": total}
