"""Flatten raw API records (dicts parsed with ``parse_float=Decimal``) into Arrow record batches.

Each record is validated as it is flattened. A record that breaks the contract (a string where a
number belongs, a missing id, an unknown status, a price that is not a number) raises
`RecordError` naming the field; `flatten_*_page` turns that into a `Rejection` so one bad record
never stops a sync nor reaches the main tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from alter_pipeline.contract import ORDER_STATUSES
from alter_pipeline.lake import schemas

_STATUSES = frozenset(ORDER_STATUSES)
_MONEY_QUANTUM = Decimal("0.0001")
_MEASURE_QUANTUM = Decimal("0.000001")

# Documented keys per object; anything else is kept in the row's `extra` JSON column.
_ORDER_KEYS = frozenset(
    {
        "id", "customizerId", "isSeenByOwner", "orderStatus", "createdAt", "customizerOrderURL",
        "productItems", "customizerName", "designName", "productGroup", "totalPrice",
    }
)  # fmt: skip
_ITEM_KEYS = frozenset(
    {
        "id", "model3d", "size", "material", "printType", "color", "variant", "unitPrice",
        "totalPrice", "quantity", "updatedAt",
    }
)  # fmt: skip
_VARIANT_KEYS = frozenset(
    {
        "id", "metadata", "minOrderQuantity", "processingTime", "stockQuantity", "volume",
        "weight", "productGroupId", "productModel3dId", "sizeId", "materialId", "printTypeId",
        "colorId",
    }
)  # fmt: skip
_PRODUCT_KEYS = frozenset(
    {"id", "name", "createdAt", "productId", "media", "storefrontProduct", "embeddable"}
)


class RecordError(ValueError):
    """A record breaks the contract; `path` names the offending field (e.g. productItems[2].id)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


@dataclass(frozen=True, slots=True)
class Rejection:
    entity: str
    record_id: str | None
    reason: str
    raw_json: str


@dataclass
class FlatOrders:
    orders: pa.RecordBatch
    items: pa.RecordBatch
    rejected: list[Rejection] = field(default_factory=list)


@dataclass
class FlatProducts:
    products: pa.RecordBatch
    rejected: list[Rejection] = field(default_factory=list)


# ---- field readers: each returns a clean Python value or raises RecordError ----------------


def _int(value: Any, path: str, *, nullable: bool = True) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(path, f"expected an integer, got {_show(value)}")
    return value


def _text(value: Any, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise RecordError(path, f"expected a string, got {_show(value)}")


def _flag(value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # the API sends isCustomizer as 0/1
        return bool(value)
    raise RecordError(path, f"expected a boolean, got {_show(value)}")


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(path, f"expected an object, got {_show(value)}")
    return value


def _decimal(value: Any, path: str, quantum: Decimal) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise RecordError(path, f"expected a number, got {_show(value)}")
    number = Decimal(value)
    try:
        exact = number.quantize(quantum)
    except InvalidOperation as error:
        raise RecordError(path, f"number {value} is out of range") from error
    if exact != number:
        raise RecordError(path, f"number {value} has more decimal places than {quantum}")
    if abs(exact) >= Decimal(10) ** 14:
        raise RecordError(path, f"number {value} is out of range")
    return exact


def _money(value: Any, path: str) -> tuple[Decimal | None, str | None]:
    money = _obj(value, path)
    amount = _decimal(money.get("value"), f"{path}.value", _MONEY_QUANTUM)
    return amount, _text(money.get("currency"), f"{path}.currency")


def _localized(value: Any, path: str) -> tuple[str | None, str | None]:
    names = _obj(value, path)
    return _text(names.get("en"), f"{path}.en"), _text(names.get("pl"), f"{path}.pl")


def _timestamp(value: Any, path: str) -> datetime | None:
    """ISO-8601 (`2026-02-09T01:55:48.000Z`) or the items' `2026-02-09 01:55:49.000000`, as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(path, f"expected a timestamp string, got {_show(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise RecordError(path, f"not a timestamp: {_show(value)}") from error
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    # float() of a wire Decimal round-trips its digits exactly in JSON text (<= 15 digits).
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=float)


def _extra(
    record: Mapping[str, Any], known: frozenset[str], into: dict[str, Any], prefix: str
) -> None:
    for key in record.keys() - known:
        into[f"{prefix}{key}"] = record[key]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- records -----------------------------------------------------------------------------


def order_row(raw: Mapping[str, Any]) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """One `orders` row and its `order_items` rows, in schema column order."""
    if not isinstance(raw, Mapping):
        raise RecordError("order", f"expected an object, got {_show(raw)}")
    if raw.get("id") is None:
        raise RecordError("id", "missing")
    order_id = _int(raw["id"], "id", nullable=False)
    status = raw.get("orderStatus")
    if status not in _STATUSES:
        raise RecordError("orderStatus", f"unknown status {_show(status)}")
    raw_items = raw.get("productItems") or []
    if not isinstance(raw_items, list):
        raise RecordError("productItems", f"expected a list, got {_show(raw_items)}")
    items = [_item_row(order_id, item, f"productItems[{n}]") for n, item in enumerate(raw_items)]
    group = _obj(raw.get("productGroup"), "productGroup")
    group_en, group_pl = _localized(group.get("name"), "productGroup.name")
    total_value, total_currency = _money(raw.get("totalPrice"), "totalPrice")
    design_name = raw.get("designName", raw.get("customizerName"))
    extra: dict[str, Any] = {}
    _extra(raw, _ORDER_KEYS, extra, "")
    row = (
        order_id,
        _int(raw.get("customizerId"), "customizerId"),
        status,
        _flag(raw.get("isSeenByOwner"), "isSeenByOwner"),
        _timestamp(raw.get("createdAt"), "createdAt"),
        _text(raw.get("customizerOrderURL"), "customizerOrderURL"),
        _text(design_name, "designName"),
        _int(group.get("id"), "productGroup.id"),
        group_en,
        group_pl,
        total_value,
        total_currency,
        len(items),
        sum(item[_ITEM_QUANTITY] or 0 for item in items),
        _json_text(extra or None),
    )
    return row, items


_ITEM_QUANTITY = schemas.ORDER_ITEMS.get_field_index("quantity")


def _item_row(order_id: int, raw: Any, path: str) -> tuple[Any, ...]:
    item = _obj(raw, path)
    if item.get("id") is None:
        raise RecordError(f"{path}.id", "missing")
    size = _obj(item.get("size"), f"{path}.size")
    material = _obj(item.get("material"), f"{path}.material")
    print_type = _obj(item.get("printType"), f"{path}.printType")
    color = _obj(item.get("color"), f"{path}.color")
    variant = _obj(item.get("variant"), f"{path}.variant")
    unit_value, unit_currency = _money(item.get("unitPrice"), f"{path}.unitPrice")
    total_value, total_currency = _money(item.get("totalPrice"), f"{path}.totalPrice")
    extra: dict[str, Any] = {}
    _extra(item, _ITEM_KEYS, extra, "")
    _extra(variant, _VARIANT_KEYS, extra, "variant.")
    v = f"{path}.variant"
    return (
        _int(item["id"], f"{path}.id", nullable=False),
        order_id,
        _int(_obj(item.get("model3d"), f"{path}.model3d").get("id"), f"{path}.model3d.id"),
        _int(size.get("id"), f"{path}.size.id"),
        *_localized(size.get("name"), f"{path}.size.name"),
        _json_text(_obj(size.get("measureSize"), f"{path}.size.measureSize") or None),
        _int(material.get("id"), f"{path}.material.id"),
        *_localized(material.get("name"), f"{path}.material.name"),
        _int(print_type.get("id"), f"{path}.printType.id"),
        *_localized(print_type.get("name"), f"{path}.printType.name"),
        _int(color.get("id"), f"{path}.color.id"),
        *_localized(color.get("name"), f"{path}.color.name"),
        _text(color.get("hex"), f"{path}.color.hex"),
        _int(variant.get("id"), f"{v}.id"),
        _json_text(variant.get("metadata")),
        _int(variant.get("minOrderQuantity"), f"{v}.minOrderQuantity"),
        _int(variant.get("processingTime"), f"{v}.processingTime"),
        _int(variant.get("stockQuantity"), f"{v}.stockQuantity"),
        _decimal(variant.get("volume"), f"{v}.volume", _MEASURE_QUANTUM),
        _decimal(variant.get("weight"), f"{v}.weight", _MEASURE_QUANTUM),
        unit_value,
        unit_currency,
        total_value,
        total_currency,
        _int(item.get("quantity"), f"{path}.quantity"),
        _timestamp(item.get("updatedAt"), f"{path}.updatedAt"),
        _json_text(extra or None),
    )


def product_row(raw: Mapping[str, Any]) -> tuple[Any, ...]:
    if not isinstance(raw, Mapping):
        raise RecordError("product", f"expected an object, got {_show(raw)}")
    if raw.get("id") is None:
        raise RecordError("id", "missing")
    images = _obj(_obj(raw.get("media"), "media").get("img"), "media.img")
    storefront = _obj(raw.get("storefrontProduct"), "storefrontProduct")
    embeddable = _obj(raw.get("embeddable"), "embeddable")
    extra: dict[str, Any] = {}
    _extra(raw, _PRODUCT_KEYS, extra, "")
    return (
        _int(raw["id"], "id", nullable=False),
        _text(raw.get("name"), "name"),
        _timestamp(raw.get("createdAt"), "createdAt"),
        _int(raw.get("productId"), "productId"),
        _text(images.get("big"), "media.img.big"),
        _text(images.get("medium"), "media.img.medium"),
        _text(images.get("small"), "media.img.small"),
        _int(storefront.get("id"), "storefrontProduct.id"),
        _text(storefront.get("shareAccess"), "storefrontProduct.shareAccess"),
        _flag(storefront.get("isCustomizer"), "storefrontProduct.isCustomizer"),
        _int(storefront.get("idUserDesign"), "storefrontProduct.idUserDesign"),
        _flag(embeddable.get("viewer"), "embeddable.viewer"),
        _flag(embeddable.get("configurator"), "embeddable.configurator"),
        _flag(embeddable.get("customizer"), "embeddable.customizer"),
        _json_text(extra or None),
    )


# ---- pages -------------------------------------------------------------------------------


def rows_to_batch(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    if not rows:
        return _empty_batch(schema)
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


def flatten_orders(raws: Iterable[Any]) -> FlatOrders:
    order_rows: list[tuple[Any, ...]] = []
    item_rows: list[tuple[Any, ...]] = []
    rejected: list[Rejection] = []
    for raw in raws:
        try:
            row, items = order_row(raw)
        except RecordError as error:
            rejected.append(_rejection("order", raw, error))
            continue
        order_rows.append(row)
        item_rows.extend(items)
    return FlatOrders(
        orders=rows_to_batch(order_rows, schemas.ORDERS),
        items=rows_to_batch(item_rows, schemas.ORDER_ITEMS),
        rejected=rejected,
    )


def flatten_products(raws: Iterable[Any]) -> FlatProducts:
    rows: list[tuple[Any, ...]] = []
    rejected: list[Rejection] = []
    for raw in raws:
        try:
            rows.append(product_row(raw))
        except RecordError as error:
            rejected.append(_rejection("product", raw, error))
    return FlatProducts(products=rows_to_batch(rows, schemas.PRODUCTS), rejected=rejected)


def _rejection(entity: str, raw: Any, error: RecordError) -> Rejection:
    record_id = raw.get("id") if isinstance(raw, Mapping) else None
    return Rejection(
        entity=entity,
        record_id=None if record_id is None else str(record_id),
        reason=str(error),
        raw_json=json.dumps(raw, ensure_ascii=False, default=str),
    )


def rejections_to_batch(rejected: list[Rejection], detected_at: datetime) -> pa.RecordBatch:
    rows = [(r.entity, r.record_id, r.reason, r.raw_json, detected_at) for r in rejected]
    return rows_to_batch(rows, schemas.REJECTED_RECORDS)
