import json
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from alter_pipeline import warehouse
from alter_pipeline.contract import example
from alter_pipeline.lake import Lake, schemas
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


def order_with_json_fields(pairs: list[tuple[object, object]]) -> dict:
    """The documented list order with one item per (measureSize, metadata) pair."""
    raw = wire("orders_list.response")["order"]["items"][0]
    template = raw["productItems"][0]
    items = []
    for n, (measure, metadata) in enumerate(pairs):
        item = json.loads(to_wire_json(template), parse_float=Decimal)
        item["id"] = n + 1
        item["size"]["measureSize"] = measure
        item["variant"]["metadata"] = metadata
        items.append(item)
    return dict(raw, productItems=items)


# What the API sent -> what `measure_size` and `variant_metadata` hold.
JSON_FIELDS = [
    ({}, {}, "{}", "{}"),
    (None, None, None, None),
    ([], [], "[]", "[]"),
    ({"W": {}}, {"tags": []}, '{"W": {}}', '{"tags": []}'),
]


def test_empty_json_values_reach_parquet_and_duckdb_as_sent_and_null_as_null(tmp_path: Path):
    pairs = [(measure, metadata) for measure, metadata, _, _ in JSON_FIELDS]
    flat = flatten_orders([order_with_json_fields(pairs)])
    assert not flat.rejected
    lake = Lake(tmp_path)
    with lake.write() as writer:
        writer.table("orders", schemas.ORDERS).write(flat.orders)
        writer.table("order_items", schemas.ORDER_ITEMS).write(flat.items)
    expected = [(n + 1, ms, md) for n, (_, _, ms, md) in enumerate(JSON_FIELDS)]
    columns = ["order_item_id", "measure_size", "variant_metadata"]
    parquet = pq.read_table(tmp_path / "lake" / "order_items", columns=columns).sort_by(columns[0])
    assert [tuple(row.values()) for row in parquet.to_pylist()] == expected
    con = warehouse.memory_connection(tmp_path)
    sql = f"SELECT {', '.join(columns)} FROM order_items ORDER BY 1"
    assert con.execute(sql).fetchall() == expected
    # `{}` is a value, not a missing one: JSON to SQL, and NULL only where the API sent null.
    assert con.execute(
        "SELECT count(*) FILTER (measure_size IS NULL), count(*) FILTER (measure_size = '{}'),"
        " count(*) FILTER (json_type(variant_metadata) = 'OBJECT') FROM order_items"
    ).fetchone() == (1, 1, 2)


def test_a_measure_size_that_is_not_an_object_is_rejected_with_the_field_named():
    flat = flatten_orders([order_with_json_fields([([Decimal(7)], None)])])
    assert [r.reason for r in flat.rejected] == [
        "productItems[0].size.measureSize: expected an object, got [Decimal('7')]"
    ]


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
