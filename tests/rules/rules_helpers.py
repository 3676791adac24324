"""Helpers of the rules tests: lake snapshots built from emulator orders or synthetic raw
orders, rules parsed from indented text, API clients with short retries."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from alter_pipeline.api import AlterClient, RetryPolicy
from alter_pipeline.lake import Lake, schemas
from alter_pipeline.lake.flatten import flatten_orders
from alter_pipeline.rules import parse_rules
from alter_pipeline.rules.model import RuleSet

PATCH_STATUS = "PATCH /customer-orders/{id}/status"
BATCH_READ = "POST /customer-orders/batch"


def write_snapshot(lake: Lake, raws: Iterable[dict[str, Any]]) -> str:
    """A snapshot holding these orders, flattened exactly as the sync flattens them."""
    flat = flatten_orders(raws)
    assert not flat.rejected, flat.rejected
    with lake.write() as writer:
        writer.table("orders", schemas.ORDERS).write(flat.orders)
        writer.table("order_items", schemas.ORDER_ITEMS).write(flat.items)
        return writer.snapshot_id


def sync_lake(emulator: Any, data_dir: Path) -> Lake:
    """The emulator's orders (list shape, as GET /customer-orders serves them) in a snapshot."""
    lake = Lake(data_dir)
    write_snapshot(lake, emulator.store.orders_list())
    return lake


def rules(text: str) -> RuleSet:
    return parse_rules(textwrap.dedent(text))


def client_for(emulator: Any, attempts: int = 3) -> AlterClient:
    policy = RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.05)
    return AlterClient(emulator.base_url, emulator.key, emulator.token, retry=policy)


# ---- synthetic raw orders (the API's detail shape) ----------------------------------------


def raw_item(
    item_id: int,
    *,
    material: str | None = "Cotton",
    print_type: str | None = "DTG",
    size: str | None = "M",
    color: str | None = "Default",
    stock: int | None = 10,
    quantity: int | None = 1,
    unit: str = "5",
    updated: str | None = "2026-10-01 00:00:00.000000",
) -> dict[str, Any]:
    def named(name: str | None, id_: int) -> dict[str, Any] | None:
        return None if name is None else {"id": id_, "name": {"pl": name, "en": name}}

    total = None if quantity is None else Decimal(unit) * quantity
    return {
        "id": item_id,
        "model3d": {"id": 381},
        "size": named(size, 395),
        "material": named(material, 2),
        "printType": named(print_type, 1),
        "color": named(color, 418) | {"hex": "#ffffff"} if color else None,
        "variant": {"id": 531, "metadata": None, "stockQuantity": stock},
        "unitPrice": {"value": Decimal(unit), "currency": "EUR"},
        "totalPrice": {"value": total, "currency": "EUR"},
        "quantity": quantity,
        "updatedAt": updated,
    }


def raw_order(
    order_id: int,
    *,
    status: str = "shopping_cart",
    created: str | None = "2026-10-01T00:00:00.000Z",
    items: list[dict[str, Any]] | None = None,
    design: str | None = "Men’s T-Shirt",
    currency: str | None = "EUR",
    seen: bool | None = False,
    group: str | None = None,
) -> dict[str, Any]:
    items = [raw_item(order_id * 10)] if items is None else items
    total = sum((i["totalPrice"]["value"] or 0 for i in items), Decimal(0))
    return {
        "id": order_id,
        "customizerId": 381,
        "isSeenByOwner": seen,
        "orderStatus": status,
        "createdAt": created,
        "customizerOrderURL": f"https://alterproduct.com/app/customizer/381/{order_id}",
        "productItems": items,
        "designName": design,
        "productGroup": None if group is None else {"id": 1, "name": {"pl": group, "en": group}},
        "totalPrice": {"value": total, "currency": currency},
    }


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)
