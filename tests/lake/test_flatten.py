import json
import re
from decimal import Decimal

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from alter_pipeline.contract import example
from alter_pipeline.lake import schemas
from alter_pipeline.lake.flatten import flatten_orders, flatten_products


def wire(name: str):
    """A documented example as the client hands it over: floats parsed as Decimal."""
    return json.loads(json.dumps(example(name)), parse_float=Decimal)


def test_list_item_flattens_to_one_order_and_its_items():
    flat = flatten_orders(wire("orders_list.response")["order"]["items"])
    order = flat.orders.to_pylist()[0]
    assert order["order_id"] == 33
    assert order["design_name"] == "Men’s T-Shirt"
    assert order["is_seen_by_owner"] is False
    assert order["product_group_id"] is None
    assert order["total_value"] == Decimal("5")
    assert (order["item_count"], order["total_quantity"]) == (1, 1)
    item = flat.items.to_pylist()[0]
    assert (item["order_item_id"], item["order_id"], item["material_name_pl"]) == (
        29,
        33,
        "Bawełna",
    )


def test_detail_shape_keeps_measure_size_as_exact_json_text():
    flat = flatten_orders(wire("orders_batch.response")["orders"])
    items = flat.items.to_pylist()
    assert json.loads(items[0]["measure_size"]) == {"D": 8.65, "H": 11.95}
    assert '"D": 8.65' in items[0]["measure_size"]
    assert flat.orders.to_pylist()[0]["product_group_name_en"] == "Mug 450ml (15oz)"


def test_empty_page_keeps_the_explicit_schema():
    flat = flatten_orders([])
    assert flat.orders.schema.equals(schemas.API_ORDERS)
    assert flat.items.schema.equals(schemas.API_ORDER_ITEMS)
    assert flat.orders.num_rows == 0


def test_page_of_nulls_keeps_column_types():
    raw = {"id": 1, "orderStatus": "paid", "productItems": [{"id": 2}], "totalPrice": None}
    flat = flatten_orders([raw])
    assert flat.orders.schema.field("total_value").type == pa.decimal128(18, 4)
    assert flat.items.to_pylist()[0]["unit_price_value"] is None


def test_unknown_fields_are_kept_in_extra():
    raw = wire("orders_list.response")["order"]["items"][0]
    raw["giftWrap"] = True
    raw["productItems"][0]["engraving"] = "Anna"
    raw["productItems"][0]["variant"]["sku"] = "TS-M"
    flat = flatten_orders([raw])
    assert json.loads(flat.orders.to_pylist()[0]["extra"]) == {"giftWrap": True}
    item_extra = json.loads(flat.items.to_pylist()[0]["extra"])
    assert item_extra == {"engraving": "Anna", "variant.sku": "TS-M"}


def test_bad_record_is_rejected_with_the_field_named_and_others_kept():
    good = wire("orders_list.response")["order"]["items"][0]
    bad_price = json.loads(json.dumps(good))
    bad_price["id"] = 34
    bad_price["productItems"][0]["unitPrice"]["value"] = "five"
    flat = flatten_orders([good, bad_price, {"orderStatus": "paid"}, {"id": 9, "orderStatus": "x"}])
    assert flat.orders.column("order_id").to_pylist() == [33]
    reasons = [(r.record_id, r.reason) for r in flat.rejected]
    assert reasons == [
        ("34", "productItems[0].unitPrice.value: expected a number, got 'five'"),
        (None, "id: missing"),
        ("9", "orderStatus: unknown status 'x'"),
    ]


def test_price_with_sub_cent_precision_beyond_four_places_is_rejected():
    raw = wire("orders_list.response")["order"]["items"][0]
    raw["totalPrice"]["value"] = Decimal("1.00001")
    assert "more decimal places" in flatten_orders([raw]).rejected[0].reason


def test_products_flatten_with_is_customizer_as_boolean():
    row = flatten_products([wire("product_detail.response")]).products.to_pylist()[0]
    assert row["product_id"] == 381
    assert row["base_product_id"] == 4
    assert row["is_customizer"] is True
    assert row["image_small"].endswith("small.png")


def to_wire_json(value) -> str:
    """JSON text with Decimals written as JSON numbers, as the API sends money."""

    def mark(obj):
        if isinstance(obj, Decimal):
            return f"@@{obj}@@"
        raise TypeError(obj)

    return re.sub(r'"@@(-?[0-9.E+-]+)@@"', r"\1", json.dumps(value, default=mark))


@given(
    cents=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=5),
    quantities=st.lists(st.integers(min_value=1, max_value=500), min_size=5, max_size=5),
)
def test_money_round_trips_exactly_from_json_to_arrow(cents, quantities):
    base = wire("orders_list.response")["order"]["items"][0]
    items = []
    for n, (amount, qty) in enumerate(zip(cents, quantities, strict=False)):
        item = json.loads(to_wire_json(base["productItems"][0]), parse_float=Decimal)
        unit = Decimal(amount) / 100
        item.update(id=n + 1, quantity=qty)
        item["unitPrice"]["value"] = unit
        item["totalPrice"]["value"] = unit * qty
        items.append(item)
    total = sum(i["totalPrice"]["value"] for i in items)
    raw = dict(base, productItems=items, totalPrice={"value": total, "currency": "EUR"})
    flat = flatten_orders([json.loads(to_wire_json(raw), parse_float=Decimal)])
    assert not flat.rejected
    assert flat.orders.to_pylist()[0]["total_value"] == total
    assert [r["unit_price_value"] for r in flat.items.to_pylist()] == [
        Decimal(c) / 100 for c in cents
    ]
