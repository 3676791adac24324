"""Every documented example response has the shape of the emulator's answer to the same call.

Shape: same keys, same nesting, same JSON types (see _shape.py). Where the example shows an
object, the emulator's answer is picked so that it shows one too (a mug's measureSize, a
grouped product), so the nested keys are compared rather than matched by a null.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from alter_pipeline.contract import example, example_names
from alter_pipeline.emulator import RunningEmulator

from ._http import client_of, find_product
from ._shape import shape_mismatches

COVERED_EXAMPLES = {
    "auth_check.response",
    "embed_session.response",
    "order_delete.response",
    "order_detail.response",
    "order_quantity.request",
    "order_quantity.response",
    "order_quantity_all.request",
    "order_quantity_all.response",
    "order_status.response",
    "orders_batch.request",
    "orders_batch.response",
    "orders_list.response",
    "product_detail.response",
    "products_list.response",
}


def assert_shape(name: str, answer: httpx.Response) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    problems = shape_mismatches(example(name), answer.json())
    assert not problems, f"{name}: " + "; ".join(problems)


def mug_order(emulator: RunningEmulator, status: str = "editable") -> dict[str, Any]:
    """A new order on a grouped mug (measureSize {"D", "H"}), like the documented one."""
    product_id = find_product(emulator, measure_keys=("D", "H"), grouped=True)
    return emulator.store.create_order(product_id=product_id, status=status)


def test_every_example_file_is_covered_by_a_contract_test() -> None:
    assert set(example_names()) == COVERED_EXAMPLES


def test_order_list_has_the_shape_of_the_example(emulator: RunningEmulator) -> None:
    # The example's item: apparel (measureSize null) with integer variant details.
    product_id = find_product(emulator, measure_keys=(), variant_details=True, grouped=True)
    order = emulator.store.create_order(product_id=product_id)
    with client_of(emulator) as client:
        answer = client.get("/customer-orders", params={"order_by": "id", "limit": 1})
    assert answer.json()["order"]["items"][0]["id"] == order["id"]
    assert_shape("orders_list.response", answer)


def test_whole_default_order_page_has_the_shape_of_the_example(client: httpx.Client) -> None:
    assert_shape("orders_list.response", client.get("/customer-orders"))


def test_order_detail_has_the_shape_of_the_example(emulator: RunningEmulator) -> None:
    order = mug_order(emulator)
    with client_of(emulator) as client:
        answer = client.get(f"/customer-orders/{order['id']}")
    assert answer.json()["order"]["productItems"][0]["size"]["measureSize"] is not None
    assert_shape("order_detail.response", answer)


def test_order_batch_has_the_shape_of_the_example(emulator: RunningEmulator) -> None:
    ids = [mug_order(emulator)["id"] for _ in range(3)]
    with client_of(emulator) as client:
        answer = client.post("/customer-orders/batch", json={"customerOrderIds": ids})
    assert [o["id"] for o in answer.json()["orders"]] == ids
    assert_shape("orders_batch.response", answer)


def test_documented_batch_request_is_accepted(client: httpx.Client) -> None:
    answer = client.post("/customer-orders/batch", json=example("orders_batch.request"))
    assert_shape("orders_batch.response", answer)


def test_status_update_has_the_shape_of_the_example(client: httpx.Client) -> None:
    answer = client.patch("/customer-orders/1/status", json={"status": "processing"})
    assert_shape("order_status.response", answer)


def test_documented_quantity_request_is_accepted(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    # The example changes orderDetailId 1 of order 1: make that order editable first.
    emulator.store.set_status(1, "editable")
    assert emulator.store.get_order(1)["productItems"][0]["id"] == 1
    answer = client.patch("/customer-orders/1/quantity", json=example("order_quantity.request"))
    assert_shape("order_quantity.response", answer)


def test_documented_quantity_all_request_is_accepted(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    emulator.store.set_status(1, "shopping_cart")
    body = example("order_quantity_all.request")
    answer = client.patch("/customer-orders/1/quantity/all", json=body)
    assert_shape("order_quantity_all.response", answer)


def test_delete_has_the_shape_of_the_example(client: httpx.Client) -> None:
    assert_shape("order_delete.response", client.delete("/customer-orders/1"))


def test_auth_check_has_the_shape_of_the_example(client: httpx.Client) -> None:
    assert_shape("auth_check.response", client.get("/auth/check"))


def test_embed_session_has_the_shape_of_the_example(client: httpx.Client) -> None:
    body = {"tool": "customizer", "origin": "https://yourstore.com", "designId": 381}
    assert_shape("embed_session.response", client.post("/embed/session", json=body))


def test_product_list_has_the_shape_of_the_example(client: httpx.Client) -> None:
    assert_shape("products_list.response", client.get("/products"))


def test_product_detail_has_the_shape_of_the_example(client: httpx.Client) -> None:
    assert_shape("product_detail.response", client.get("/products/381"))


@pytest.mark.parametrize(
    ("expected", "actual", "problem"),
    [
        ({"a": 1}, {"a": "1"}, "$.a: expected number, got string"),
        ({"a": 1}, {}, "$: missing key 'a'"),
        ({}, {"b": 1}, "$: unexpected key 'b'"),
        ({"a": [{"b": True}]}, {"a": [{"b": True}, {"b": 0}]}, "$.a[1].b: expected boolean"),
    ],
)
def test_shape_comparator_reports_differences(expected: Any, actual: Any, problem: str) -> None:
    assert any(p.startswith(problem) for p in shape_mismatches(expected, actual))


def test_shape_comparator_treats_int_and_float_as_number_and_null_as_any() -> None:
    assert shape_mismatches({"v": 5, "g": None}, {"v": 12.99, "g": {"id": 1}}) == []


def test_shape_comparator_compares_only_value_types_of_measure_size_maps() -> None:
    expected = {"measureSize": {"D": 8.65, "H": 11.95}}
    assert shape_mismatches(expected, {"measureSize": {"W": 30, "H": 40}}) == []
    assert shape_mismatches(expected, {"measureSize": {"W": "30"}}) != []
