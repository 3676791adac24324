"""Typed parsing of the contract's example bodies: list vs detail shape, money, timestamps."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from alter_pipeline.api import models
from alter_pipeline.contract import example


def wire(name: str) -> Any:
    """An example as the client parses it off the wire (floats as Decimal)."""
    return json.loads(json.dumps(example(name)), parse_float=Decimal)


def test_list_entry_has_list_only_fields_and_short_variant() -> None:
    entry = models.OrderList.from_json(wire("orders_list.response")).items[0]
    assert isinstance(entry, models.OrderSummary)
    assert entry.is_seen_by_owner is False
    assert entry.customizer_name == "Men’s T-Shirt"
    assert not hasattr(entry, "design_name")
    variant = entry.product_items[0].variant
    assert variant.product_group_id is None and variant.size_id is None
    assert variant.min_order_quantity == 0


def test_detail_has_design_name_and_long_variant() -> None:
    order = models.Order.from_json(wire("order_detail.response")["order"])
    assert order.design_name == "Mug 450ml (15oz)"
    assert not hasattr(order, "customizer_name") and not hasattr(order, "is_seen_by_owner")
    variant = order.product_items[0].variant
    assert (variant.product_group_id, variant.product_model3d_id, variant.size_id) == (1, 3, 9)
    assert (variant.material_id, variant.print_type_id, variant.color_id) == (3, 5, 11)


def test_measure_size_is_none_or_a_decimal_mapping() -> None:
    listed = models.OrderList.from_json(wire("orders_list.response")).items[0]
    detail = models.Order.from_json(wire("order_detail.response")["order"])
    assert listed.product_items[0].size.measure_size is None
    assert detail.product_items[0].size.measure_size == {
        "D": Decimal("8.65"),
        "H": Decimal("11.95"),
    }


def test_product_group_is_none_or_typed() -> None:
    listed = models.OrderList.from_json(wire("orders_list.response")).items[0]
    detail = models.Order.from_json(wire("order_detail.response")["order"])
    assert listed.product_group is None
    assert detail.product_group == models.ProductGroup(
        1, models.LocalizedName(pl="Kubek 450ml (15oz)", en="Mug 450ml (15oz)")
    )


def test_money_is_exact_decimal() -> None:
    body = wire("orders_list.response")
    body["order"]["items"][0]["totalPrice"]["value"] = Decimal("0.10")
    body["order"]["items"][0]["productItems"][0]["unitPrice"]["value"] = Decimal("19.99")
    entry = models.OrderList.from_json(body).items[0]
    assert entry.total_price == models.Money(Decimal("0.10"), "EUR")
    assert entry.product_items[0].unit_price.value == Decimal("19.99")
    assert isinstance(entry.product_items[0].total_price.value, Decimal)  # int 5 on the wire


def test_item_updated_at_is_read_as_utc() -> None:
    item = models.OrderList.from_json(wire("orders_list.response")).items[0].product_items[0]
    assert item.updated_at == datetime(2026, 2, 9, 1, 55, 49, tzinfo=UTC)


def test_created_at_is_an_aware_datetime() -> None:
    entry = models.OrderList.from_json(wire("orders_list.response")).items[0]
    assert entry.created_at == datetime(2026, 2, 9, 1, 55, 48, tzinfo=UTC)
    assert entry.created_at.tzinfo is not None


def test_unknown_fields_are_ignored() -> None:
    body = wire("order_detail.response")
    order = body["order"]
    order["loyaltyPoints"] = 12
    order["productItems"][0]["engraving"] = {"text": "hi"}
    order["productItems"][0]["variant"]["sku"] = "MUG-450"
    order["productGroup"]["slug"] = "mug"
    parsed = models.Order.from_json(order)
    assert parsed.id == 1 and parsed.product_items[0].variant.id == 11


def test_missing_documented_field_raises() -> None:
    order = copy.deepcopy(wire("order_detail.response")["order"])
    del order["designName"]
    with pytest.raises(KeyError):
        models.Order.from_json(order)


def test_boolean_id_is_refused() -> None:
    order = wire("order_detail.response")["order"]
    order["id"] = True
    with pytest.raises(TypeError):
        models.Order.from_json(order)


def test_product_list_and_detail_share_one_shape() -> None:
    listed = models.ProductList.from_json(wire("products_list.response"))
    detail = models.Product.from_json(wire("product_detail.response"))
    assert listed.total == 1 and listed.items[0] == detail
    assert detail.storefront_product.is_customizer is True  # 1 on the wire
    assert detail.media.small is not None and detail.media.small.endswith("small.png")


def test_auth_info_and_write_results_parse() -> None:
    auth = models.AuthInfo.from_json(wire("auth_check.response"))
    assert auth.scopes == ("orders:read", "orders:write") and auth.storefront_id == 12
    status = models.StatusUpdate.from_json(wire("order_status.response"))
    assert status.new_status == "processing"
    assert models.QuantityUpdate.from_json(wire("order_quantity.response")).order_id == 1
    assert models.QuantityAllUpdate.from_json(wire("order_quantity_all.response")).quantity == 2
    assert models.DeleteResult.from_json(wire("order_delete.response")).success is True


def test_embed_session_token_is_not_in_repr() -> None:
    session = models.EmbedSession.from_json(wire("embed_session.response"))
    assert session.token.startswith("eyJ")
    assert session.token not in repr(session)
    assert session.expires_in == 3600 and session.mode == "design"


def test_models_are_frozen_and_slotted() -> None:
    entry = models.OrderList.from_json(wire("orders_list.response")).items[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.id = 2  # type: ignore[misc]
    assert not hasattr(entry, "__dict__")
