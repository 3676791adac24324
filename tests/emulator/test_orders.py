"""Reading orders: defaults, paging, sorting, filters, batch, totals and formats."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx
import pytest

from alter_pipeline.emulator import RunningEmulator

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SQL_US = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")


def page(client: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = client.get("/customer-orders", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["order"]


def all_ids(client: httpx.Client, **params: Any) -> list[int]:
    ids: list[int] = []
    while True:
        chunk = page(client, offset=len(ids), limit=50, **params)
        ids += [o["id"] for o in chunk["items"]]
        if len(ids) >= chunk["total"] or not chunk["items"]:
            return ids


def test_default_page_is_20_newest_first(client: httpx.Client) -> None:
    items = page(client)["items"]
    assert len(items) == 20
    created = [o["createdAt"] for o in items]
    assert created == sorted(created, reverse=True)


def test_total_counts_every_order(emulator: RunningEmulator, client: httpx.Client) -> None:
    assert page(client, limit=1)["total"] == emulator.store.order_count() == 120


def test_paging_by_id_covers_every_order_once(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    ids = all_ids(client, order_by="id", direction="ASC")
    assert ids == sorted(ids) == emulator.store.order_ids()


def test_offset_past_the_end_is_an_empty_page(client: httpx.Client) -> None:
    assert page(client, offset=5000) == {"items": [], "total": 120}


def test_descending_id_reverses_ascending(client: httpx.Client) -> None:
    ascending = all_ids(client, order_by="id", direction="ASC")
    assert all_ids(client, order_by="id", direction="DESC") == ascending[::-1]


def test_design_name_sort_is_case_insensitive_alphabetical(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    names = {o["id"]: o["designName"] for o in emulator.store.orders_detail()}
    ids = all_ids(client, order_by="design_name", direction="ASC")
    keys = [(names[i].casefold(), i) for i in ids]
    assert keys == sorted(keys)


def test_name_filter_matches_design_or_customizer_name_ignoring_case(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    expected = {
        o["id"]
        for o, d in zip(emulator.store.orders_list(), emulator.store.orders_detail(), strict=True)
        if "mug" in o["customizerName"].lower() or "mug" in d["designName"].lower()
    }
    assert expected
    assert set(all_ids(client, name="MUG")) == expected


def test_category_filter_keeps_one_product_group(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    groups = {o["id"]: o["productGroup"] for o in emulator.store.orders_list()}
    group_id = next(g["id"] for g in groups.values() if g)
    ids = all_ids(client, category_id=group_id)
    assert ids
    assert {i for i, g in groups.items() if g and g["id"] == group_id} == set(ids)


def test_status_filter_keeps_one_status(emulator: RunningEmulator, client: httpx.Client) -> None:
    ids = all_ids(client, order_status="completed")
    assert set(ids) == set(emulator.store.order_ids(["completed"]))
    assert ids


def test_filters_combine(emulator: RunningEmulator, client: httpx.Client) -> None:
    for order in page(client, order_status="shopping_cart", name="t-shirt", limit=50)["items"]:
        assert order["orderStatus"] == "shopping_cart"
        assert "t-shirt" in order["customizerName"].lower()


def test_batch_answers_found_orders_in_the_order_asked(client: httpx.Client) -> None:
    answer = client.post("/customer-orders/batch", json={"customerOrderIds": [5, 999999, 2, 5]})
    assert [o["id"] for o in answer.json()["orders"]] == [5, 2]


def test_empty_batch_is_an_empty_answer(client: httpx.Client) -> None:
    answer = client.post("/customer-orders/batch", json={"customerOrderIds": []})
    assert answer.json() == {"orders": []}


def test_detail_and_list_show_the_same_order(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    listed = page(client, order_by="id", direction="ASC", limit=1)["items"][0]
    detail = client.get(f"/customer-orders/{listed['id']}").json()["order"]
    for key in ("id", "customizerId", "orderStatus", "createdAt", "totalPrice", "productGroup"):
        assert listed[key] == detail[key]
    assert listed["customizerName"] == detail["designName"]
    assert [i["id"] for i in listed["productItems"]] == [i["id"] for i in detail["productItems"]]


def test_list_items_use_the_short_variant_and_detail_the_long(client: httpx.Client) -> None:
    listed = page(client, limit=1)["items"][0]
    detail = client.get(f"/customer-orders/{listed['id']}").json()["order"]
    assert "productGroupId" not in listed["productItems"][0]["variant"]
    assert "productGroupId" in detail["productItems"][0]["variant"]
    assert {"isSeenByOwner", "customizerName"} <= listed.keys()
    assert not {"isSeenByOwner", "customizerName"} & detail.keys()
    assert "designName" in detail and "designName" not in listed


def test_money_is_exact_cents_and_totals_add_up(emulator: RunningEmulator) -> None:
    for order in emulator.store.orders_detail():  # parsed with Decimal
        items_total = Decimal(0)
        for item in order["productItems"]:
            unit, line = item["unitPrice"]["value"], item["totalPrice"]["value"]
            assert Decimal(unit) == Decimal(unit).quantize(Decimal("0.01"))
            assert line == unit * item["quantity"]
            items_total += line
        assert order["totalPrice"]["value"] == items_total
        assert order["totalPrice"]["currency"] == "EUR"


def test_money_is_rendered_without_float_noise(client: httpx.Client) -> None:
    body = client.get("/customer-orders", params={"limit": 50}).text
    values = re.findall(r'"value":([0-9.]+)', body)
    assert values
    assert all(re.fullmatch(r"\d+(\.\d{1,2})?", v) and not v.endswith(".0") for v in values)


def test_timestamps_have_the_documented_formats(client: httpx.Client) -> None:
    for order in page(client, limit=50)["items"]:
        assert ISO_MS.match(order["createdAt"])
        assert all(SQL_US.match(item["updatedAt"]) for item in order["productItems"])


def test_customizer_order_url_points_at_the_customizer(client: httpx.Client) -> None:
    order = page(client, limit=1)["items"][0]
    expected = f"https://alterproduct.com/app/customizer/{order['customizerId']}/{order['id']}"
    assert order["customizerOrderURL"] == expected


def test_json_is_utf8_with_raw_polish_letters(client: httpx.Client) -> None:
    raw = client.get("/customer-orders", params={"limit": 50}).content
    assert "ł".encode() in raw or "ó".encode() in raw
    assert b"\\u" not in raw


@pytest.mark.parametrize(
    ("params", "first_key"),
    [({}, "id"), ({"order_by": "name", "direction": "DESC"}, "name")],
)
def test_products_sort_and_page(
    client: httpx.Client, params: dict[str, str], first_key: str
) -> None:
    answer = client.get("/products", params=params).json()["products"]
    assert len(answer["items"]) == 9  # the documented default page size
    assert answer["total"] == 12
    keys = [p[first_key] for p in answer["items"]]
    assert keys == sorted(keys, reverse=bool(params))


def test_products_filter_by_customizer_flag(client: httpx.Client) -> None:
    items = client.get("/products", params={"customizer": "false", "limit": 50}).json()
    for product in items["products"]["items"]:
        assert product["storefrontProduct"]["isCustomizer"] == 0
        assert product["embeddable"]["customizer"] is False


def test_products_filter_by_name(client: httpx.Client) -> None:
    items = client.get("/products", params={"name": "MUG"}).json()["products"]["items"]
    assert items and all("mug" in p["name"].lower() for p in items)


def test_product_media_links_serve_the_previews(client: httpx.Client) -> None:
    product = client.get("/products/381").json()
    answer = httpx.get(product["media"]["img"]["small"])
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
