"""Serialisation of records to the API's JSON, as bytes.

Orders are rendered by concatenating pre-rendered fragments: each variant's `model3d`..`variant`
run is rendered once, so an item costs a few `%` formats. The key order of every object follows
the documented examples. Money is rendered from integer cents the way the live API (JavaScript)
prints numbers: `5`, `12.5`, `12.99`, never float noise.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from alter_pipeline.emulator.model import Item, Order, Product, ProductGroup, Variant

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (the live API sends raw UTF-8, not \\u escapes)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def money_number(cents: int) -> bytes:
    euros, rest = divmod(cents, 100)
    if rest == 0:
        return b"%d" % euros
    if rest % 10 == 0:
        return b"%d.%d" % (euros, rest // 10)
    return b"%d.%02d" % (euros, rest)


@lru_cache(maxsize=1 << 16)
def money(cents: int) -> bytes:
    # Cached: unit prices repeat endlessly and totals cluster, so this is mostly a dict hit.
    return b'{"value":%s,"currency":"EUR"}' % money_number(cents)


@lru_cache(maxsize=4096)
def _day(days_since_epoch: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + days_since_epoch).isoformat()


@lru_cache(maxsize=1)
def _times_of_day() -> list[str]:
    # All 86,400 "HH:MM:SS" strings: one list index instead of three divmods and a format.
    return [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]


def iso_ms(ms: int) -> str:
    """`2026-02-09T01:55:48.000Z` from milliseconds since the epoch."""
    seconds, millis = divmod(ms, 1000)
    days, second_of_day = divmod(seconds, 86_400)
    return f"{_day(days)}T{_times_of_day()[second_of_day]}.{millis:03d}Z"


def sql_us(us: int) -> str:
    """`2026-02-09 01:55:49.000000` (the items' updatedAt format) from epoch microseconds."""
    seconds, micros = divmod(us, 1_000_000)
    days, second_of_day = divmod(seconds, 86_400)
    return f"{_day(days)} {_times_of_day()[second_of_day]}.{micros:06d}"


@lru_cache(maxsize=1 << 14)
def json_string(text: str) -> bytes:
    """A JSON string literal; cached, as design and product names repeat across orders."""
    return dumps(text)


def epoch_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // _ONE_MS


_ONE_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


def localized(name: Any) -> dict[str, str]:
    return {"pl": name.pl, "en": name.en}


@lru_cache(maxsize=256)
def group_bytes(group: ProductGroup | None) -> bytes:
    if group is None:
        return b"null"
    return dumps({"id": group.id, "name": localized(group.name)})


def _variant_parts(variant: Variant) -> tuple[dict[str, Any], dict[str, Any]]:
    """The item keys from `model3d` to `color`, and the variant's trailing (short) fields."""
    size = variant.size
    head = {
        "model3d": {"id": variant.product_id},
        "size": {
            "id": size.id,
            "name": localized(size.name),
            "measureSize": None if size.measure is None else dict(size.measure),
        },
        "material": {"id": variant.material.id, "name": localized(variant.material.name)},
        "printType": {"id": variant.print_type.id, "name": localized(variant.print_type.name)},
        "color": {
            "id": variant.color.id,
            "name": localized(variant.color.name),
            "hex": variant.color.hex,
        },
    }
    tail = {
        "metadata": variant.metadata,
        "minOrderQuantity": variant.min_order_quantity,
        "processingTime": variant.processing_time,
        "stockQuantity": variant.stock_quantity,
        "volume": variant.volume,
        "weight": variant.weight,
    }
    return head, tail


def prepare_variant(variant: Variant) -> None:
    """Fill the variant's list and detail fragments (`"model3d":...,"variant":{...}`)."""
    head, tail = _variant_parts(variant)
    short = {"id": variant.id, **tail}
    long = {
        "id": variant.id,
        "productGroupId": variant.group_id,
        "productModel3dId": variant.model_id,
        "sizeId": variant.size.id,
        "materialId": variant.material.id,
        "printTypeId": variant.print_type.id,
        "colorId": variant.color.id,
        **tail,
    }
    # Drop the outer braces: the fragment is spliced into the item object.
    variant.list_fragment = dumps({**head, "variant": short})[1:-1]
    variant.detail_fragment = dumps({**head, "variant": long})[1:-1]


def _item_tail(item: Item) -> bytes:
    if item.tail is None:
        unit = item.variant.unit_cents
        item.tail = b'"unitPrice":%s,"totalPrice":%s,"quantity":%d,"updatedAt":"%s"}' % (
            money(unit),
            money(unit * item.quantity),
            item.quantity,
            sql_us(item.updated_us).encode(),
        )
    return item.tail


def _items(order: Order, detail: bool) -> bytes:
    if detail:
        parts = [
            b'{"id":%d,%s,%s' % (i.id, i.variant.detail_fragment, _item_tail(i))
            for i in order.items
        ]
    else:
        parts = [
            b'{"id":%d,%s,%s' % (i.id, i.variant.list_fragment, _item_tail(i)) for i in order.items
        ]
    return b",".join(parts)


def order_list_bytes(order: Order, app_url: str) -> bytes:
    """The order as an item of `GET /customer-orders`."""
    product = order.product
    return (
        b'{"id":%d,"customizerId":%d,"isSeenByOwner":%s,"orderStatus":"%s","createdAt":"%s",'
        b'"customizerOrderURL":"%s/app/customizer/%d/%d","productItems":[%s],'
        b'"customizerName":%s,"productGroup":%s,"totalPrice":%s}'
        % (
            order.id,
            product.id,
            b"true" if order.seen else b"false",
            order.status.encode(),
            iso_ms(order.created_ms).encode(),
            app_url.encode(),
            product.id,
            order.id,
            _items(order, detail=False),
            # The list calls the design's name `customizerName`, the detail `designName`: one
            # value (the design that `customizerId` names), as the contract's examples show.
            json_string(order.design_name),
            group_bytes(product.group),
            money(order.total_cents()),
        )
    )


def order_detail_bytes(order: Order, app_url: str) -> bytes:
    """The order as `GET /customer-orders/:id` and the batch answer show it."""
    product = order.product
    return (
        b'{"id":%d,"customizerId":%d,"orderStatus":"%s","createdAt":"%s",'
        b'"customizerOrderURL":"%s/app/customizer/%d/%d","productItems":[%s],'
        b'"designName":%s,"productGroup":%s,"totalPrice":%s}'
        % (
            order.id,
            product.id,
            order.status.encode(),
            iso_ms(order.created_ms).encode(),
            app_url.encode(),
            product.id,
            order.id,
            _items(order, detail=True),
            json_string(order.design_name),
            group_bytes(product.group),
            money(order.total_cents()),
        )
    )


def product_dict(product: Product, files_url: str) -> dict[str, Any]:
    """The product as `GET /products/:id` answers it (and as each list item)."""
    media = f"{files_url}/files/public/products/{product.product_id}"
    return {
        "id": product.id,
        "name": product.name,
        "createdAt": iso_ms(product.created_ms),
        "productId": product.product_id,
        "media": {
            "img": {size: f"{media}/{size}.png" for size in ("big", "medium", "small")},
        },
        "storefrontProduct": {
            "id": product.storefront_product_id,
            "shareAccess": product.share_access,
            "idUserDesign": product.id,
            "isCustomizer": int(product.is_customizer),
        },
        "embeddable": {
            "viewer": True,
            "configurator": product.configurator,
            "customizer": product.is_customizer,
        },
    }
