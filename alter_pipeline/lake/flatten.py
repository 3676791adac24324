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
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from alter_pipeline.contract import fields
from alter_pipeline.lake import schemas

_STATUSES = fields.STATUSES
_MONEY_QUANTUM = fields.MONEY_QUANTUM
_MEASURE_QUANTUM = fields.MEASURE_QUANTUM
_JSON_CACHE_SIZE = 4096

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
# Readers take the field's path as `at` (the enclosing object, "" at the top) and `name`, and
# join them only to report an error: a flattened item reads ~30 fields, so building every
# path up front costed more than the checks themselves. Exact types are tested first.


def _path(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name


def _int(value: Any, at: str, name: str, *, nullable: bool = True) -> int | None:
    if type(value) is int or (value is None and nullable):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(_path(at, name), f"expected an integer, got {_show(value)}")
    return value


def _text(value: Any, at: str, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise RecordError(_path(at, name), f"expected a string, got {_show(value)}")


def _flag(value: Any, at: str, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # the API sends isCustomizer as 0/1
        return bool(value)
    raise RecordError(_path(at, name), f"expected a boolean, got {_show(value)}")


def _obj(value: Any, at: str, name: str) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(_path(at, name), f"expected an object, got {_show(value)}")
    return value


def _decimal(value: Any, at: str, name: str, quantum: Decimal, limit: Decimal) -> Decimal | None:
    if value is None:
        return None
    try:
        number = fields.exact_number(value)
    except TypeError:
        raise RecordError(_path(at, name), f"expected a number, got {_show(value)}") from None
    try:
        exact = number.quantize(quantum)
    except InvalidOperation as error:
        raise RecordError(_path(at, name), f"number {value} is out of range") from error
    if exact != number:
        problem = f"number {value} has more decimal places than {quantum}"
        raise RecordError(_path(at, name), problem)
    if abs(exact) >= limit:
        raise RecordError(_path(at, name), f"number {value} is out of range")
    return exact


def _money(value: Any, at: str, name: str) -> tuple[Decimal | None, str | None]:
    money = _obj(value, at, name)
    if not money:
        return None, None
    where = _path(at, name)
    amount = _decimal(money.get("value"), where, "value", _MONEY_QUANTUM, fields.MONEY_LIMIT)
    return amount, _text(money.get("currency"), where, "currency")


def _localized(value: Any, at: str, name: str) -> tuple[str | None, str | None]:
    names = _obj(value, at, name)
    en, pl = names.get("en"), names.get("pl")
    if (en is None or type(en) is str) and (pl is None or type(pl) is str):
        return en, pl
    where = _path(at, name)
    return _text(en, where, "en"), _text(pl, where, "pl")


def _timestamp(value: Any, at: str, name: str) -> datetime | None:
    """An API timestamp as an aware UTC datetime (`contract.fields.parse_timestamp`)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(_path(at, name), f"expected a timestamp string, got {_show(value)}")
    try:
        return fields.parse_timestamp(value)
    except ValueError as error:
        raise RecordError(_path(at, name), f"not a timestamp: {_show(value)}") from error


def measure_size_text(value: Any, at: str = "size") -> str | None:
    """`measureSize` as the `measure_size` column holds it: JSON text of what the API sent.

    null stays NULL and `{}` stays `'{}'`: a size without measures is not a size whose
    measures are unknown. `[]`, the way a PHP backend spells an empty map, stays `'[]'`
    rather than losing the order; any other non-object is a contract break.
    """
    if value is None or (type(value) is list and not value):
        return _json_text(value)
    return _json_text(_measure_map(value, at))


def _measure_map(value: Any, at: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(_path(at, "measureSize"), f"expected an object, got {_show(value)}")
    return value


def metadata_text(value: Any) -> str | None:
    """A variant's `metadata` as the `variant_metadata` column holds it: JSON text of what
    the API sent (null as NULL, `{}` as `'{}'`, `[]` as `'[]'`)."""
    return _json_text(value)


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    # Few distinct values (a variant's metadata, a size's measures) repeat on many items:
    # flat objects of scalars are cached under a key that keeps each value's type, so that
    # 1, 1.0 and true never share a text.
    key = _json_key(value)
    if key is None:
        return _dumps(value)
    text = _json_cache.get(key)
    if text is None:
        if len(_json_cache) >= _JSON_CACHE_SIZE:
            _json_cache.clear()
        text = _json_cache[key] = _dumps(value)
    return text


def _dumps(value: Any) -> str:
    # float() of a wire Decimal round-trips its digits exactly in JSON text (<= 15 digits).
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=float)


_SCALARS = frozenset({str, int, Decimal, bool, type(None)})
_json_cache: dict[tuple[Any, ...], str] = {}


def _json_key(value: Any) -> tuple[Any, ...] | None:
    if type(value) is not dict:
        return None
    key = tuple((k, type(v), v) for k, v in value.items())
    if all(type(k) is str and t in _SCALARS for k, t, _ in key):
        return key
    return None


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
    order_id = raw["id"]
    if type(order_id) is not int:  # _int names the problem (a bool, a string)
        _int(order_id, "", "id", nullable=False)
    status = raw.get("orderStatus")
    if status not in _STATUSES:
        raise RecordError("orderStatus", f"unknown status {_show(status)}")
    raw_items = raw.get("productItems") or []
    if not isinstance(raw_items, list):
        raise RecordError("productItems", f"expected a list, got {_show(raw_items)}")
    items = [_item_row(order_id, item, f"productItems[{n}]") for n, item in enumerate(raw_items)]
    group = _obj(raw.get("productGroup"), "", "productGroup")
    group_en, group_pl = _localized(group.get("name"), "productGroup", "name")
    total_value, total_currency = _money(raw.get("totalPrice"), "", "totalPrice")
    design_name = fields.design_name(raw)
    extra: dict[str, Any] = {}
    _extra(raw, _ORDER_KEYS, extra, "")
    row = (
        order_id,
        _int(raw.get("customizerId"), "", "customizerId"),
        status,
        _flag(raw.get("isSeenByOwner"), "", "isSeenByOwner"),
        _timestamp(raw.get("createdAt"), "", "createdAt"),
        _text(raw.get("customizerOrderURL"), "", "customizerOrderURL"),
        _text(design_name, "", "designName"),
        _int(group.get("id"), "productGroup", "id"),
        group_en,
        group_pl,
        total_value,
        total_currency,
        len(items),
        sum(item[_ITEM_QUANTITY] or 0 for item in items),
        _json_text(extra or None),
    )
    return row, items


_ITEM_QUANTITY = schemas.API_ORDER_ITEMS.get_field_index("quantity")


def _item_row(order_id: int, raw: Any, path: str) -> tuple[Any, ...]:
    item = _obj(raw, "", path)
    if item.get("id") is None:
        raise RecordError(f"{path}.id", "missing")
    size = _obj(item.get("size"), path, "size")
    material = _obj(item.get("material"), path, "material")
    print_type = _obj(item.get("printType"), path, "printType")
    color = _obj(item.get("color"), path, "color")
    variant = _obj(item.get("variant"), path, "variant")
    unit_value, unit_currency = _money(item.get("unitPrice"), path, "unitPrice")
    total_value, total_currency = _money(item.get("totalPrice"), path, "totalPrice")
    extra: dict[str, Any] = {}
    _extra(item, _ITEM_KEYS, extra, "")
    _extra(variant, _VARIANT_KEYS, extra, "variant.")
    v = f"{path}.variant"
    size_at = f"{path}.size"
    return (
        _int(item["id"], path, "id", nullable=False),
        order_id,
        _int(_obj(item.get("model3d"), path, "model3d").get("id"), f"{path}.model3d", "id"),
        _int(size.get("id"), size_at, "id"),
        *_localized(size.get("name"), size_at, "name"),
        measure_size_text(size.get("measureSize"), size_at),
        _int(material.get("id"), path, "material.id"),
        *_localized(material.get("name"), path, "material.name"),
        _int(print_type.get("id"), path, "printType.id"),
        *_localized(print_type.get("name"), path, "printType.name"),
        _int(color.get("id"), path, "color.id"),
        *_localized(color.get("name"), path, "color.name"),
        _text(color.get("hex"), path, "color.hex"),
        _int(variant.get("id"), v, "id"),
        metadata_text(variant.get("metadata")),
        _int(variant.get("minOrderQuantity"), v, "minOrderQuantity"),
        _int(variant.get("processingTime"), v, "processingTime"),
        _int(variant.get("stockQuantity"), v, "stockQuantity"),
        _decimal(variant.get("volume"), v, "volume", _MEASURE_QUANTUM, fields.MEASURE_LIMIT),
        _decimal(variant.get("weight"), v, "weight", _MEASURE_QUANTUM, fields.MEASURE_LIMIT),
        unit_value,
        unit_currency,
        total_value,
        total_currency,
        _int(item.get("quantity"), path, "quantity"),
        _timestamp(item.get("updatedAt"), path, "updatedAt"),
        _json_text(extra or None),
    )


def product_row(raw: Mapping[str, Any]) -> tuple[Any, ...]:
    if not isinstance(raw, Mapping):
        raise RecordError("product", f"expected an object, got {_show(raw)}")
    if raw.get("id") is None:
        raise RecordError("id", "missing")
    images = _obj(_obj(raw.get("media"), "", "media").get("img"), "media", "img")
    storefront = _obj(raw.get("storefrontProduct"), "", "storefrontProduct")
    embeddable = _obj(raw.get("embeddable"), "", "embeddable")
    extra: dict[str, Any] = {}
    _extra(raw, _PRODUCT_KEYS, extra, "")
    sp, emb = "storefrontProduct", "embeddable"
    return (
        _int(raw["id"], "", "id", nullable=False),
        _text(raw.get("name"), "", "name"),
        _timestamp(raw.get("createdAt"), "", "createdAt"),
        _int(raw.get("productId"), "", "productId"),
        _text(images.get("big"), "media.img", "big"),
        _text(images.get("medium"), "media.img", "medium"),
        _text(images.get("small"), "media.img", "small"),
        _int(storefront.get("id"), sp, "id"),
        _text(storefront.get("shareAccess"), sp, "shareAccess"),
        _flag(storefront.get("isCustomizer"), sp, "isCustomizer"),
        _int(storefront.get("idUserDesign"), sp, "idUserDesign"),
        _flag(embeddable.get("viewer"), emb, "viewer"),
        _flag(embeddable.get("configurator"), emb, "configurator"),
        _flag(embeddable.get("customizer"), emb, "customizer"),
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
        orders=rows_to_batch(order_rows, schemas.API_ORDERS),
        items=rows_to_batch(item_rows, schemas.API_ORDER_ITEMS),
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
    return FlatProducts(products=rows_to_batch(rows, schemas.API_PRODUCTS), rejected=rejected)


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
    return rows_to_batch(rows, schemas.API_REJECTED_RECORDS)
