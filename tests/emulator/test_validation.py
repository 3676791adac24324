"""Bad input answers 400 with a JSON message naming the problem; unknown ids answer 404."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

STORE = "https://yourstore.com"


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "51"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"order_by": "total"}, "order_by"),
        ({"direction": "UP"}, "direction"),
        ({"order_status": "pending"}, "order_status"),
        ({"category_id": "mugs"}, "category_id"),
    ],
)
def test_bad_order_list_parameter_is_a_400_naming_it(
    client: httpx.Client, query: dict[str, str], named: str
) -> None:
    answer = client.get("/customer-orders", params=query)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(named)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"limit": "51"}, "limit"),
        ({"offset": "-3"}, "offset"),
        ({"customizer": "maybe"}, "customizer"),
        ({"order_by": "price"}, "order_by"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_bad_product_list_parameter_is_a_400_naming_it(
    client: httpx.Client, query: dict[str, str], named: str
) -> None:
    answer = client.get("/products", params=query)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(named)


def test_lower_case_direction_is_accepted(client: httpx.Client) -> None:
    assert client.get("/customer-orders", params={"direction": "asc"}).status_code == 200


@pytest.mark.parametrize("url", ["/customer-orders/abc", "/customer-orders/0", "/products/1.5"])
def test_non_integer_path_id_is_a_400(client: httpx.Client, url: str) -> None:
    answer = client.get(url)
    assert answer.status_code == 400
    assert "must be an integer" in answer.json()["message"]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/customer-orders/batch"),
        ("PATCH", "/customer-orders/1/status"),
        ("PATCH", "/customer-orders/1/quantity"),
        ("PATCH", "/customer-orders/1/quantity/all"),
        ("POST", "/embed/session"),
    ],
)
def test_malformed_json_body_is_a_400(client: httpx.Client, method: str, url: str) -> None:
    answer = client.request(
        method, url, content=b'{"status": ', headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert "malformed JSON" in answer.json()["message"]


def test_json_body_that_is_not_an_object_is_a_400(client: httpx.Client) -> None:
    answer = client.post("/customer-orders/batch", json=[1, 2])
    assert answer.status_code == 400
    assert "JSON object" in answer.json()["message"]


@pytest.mark.parametrize(
    ("url", "body", "named"),
    [
        ("/customer-orders/batch", {"customerOrderIds": "1,2"}, "customerOrderIds"),
        ("/customer-orders/batch", {"customerOrderIds": [1, "2"]}, "customerOrderIds[1]"),
        ("/customer-orders/batch", {"customerOrderIds": list(range(1, 102))}, "customerOrderIds"),
        ("/embed/session", {"tool": "editor", "origin": "https://yourstore.com", "designId": 381},
         "tool"),
        ("/embed/session", {"tool": "viewer", "designId": 381}, "origin"),
        ("/embed/session",
         {"tool": "viewer", "origin": "https://yourstore.com", "designId": 381, "orderId": 1},
         "provide exactly one"),
        ("/embed/session", {"tool": "viewer", "origin": "https://yourstore.com"},
         "provide exactly one"),
        ("/embed/session", {"tool": "viewer", "origin": "yourstore.com", "designId": 381},
         "origin"),
    ],
)  # fmt: skip
def test_wrong_post_body_is_a_400_naming_the_field(
    client: httpx.Client, url: str, body: Any, named: str
) -> None:
    answer = client.post(url, json=body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(named)


@pytest.mark.parametrize(
    ("suffix", "body", "named"),
    [
        ("status", {"status": 5}, "status"),
        ("status", {"status": "shipped"}, "status"),
        ("status", {}, "status"),
        ("quantity", {"items": []}, "items"),
        ("quantity", {"items": "1:3"}, "items"),
        ("quantity", {"items": [{"orderDetailId": 1}]}, "items[0].quantity"),
        ("quantity", {"items": [{"orderDetailId": "1", "quantity": 2}]}, "items[0].orderDetailId"),
        ("quantity", {"items": [{"orderDetailId": 1, "quantity": 0}]}, "items[0].quantity"),
        ("quantity", {"items": [{"orderDetailId": 1, "quantity": 1.5}]}, "items[0].quantity"),
        ("quantity", {"items": [{"orderDetailId": 1, "quantity": True}]}, "items[0].quantity"),
        ("quantity", {"items": [{"orderDetailId": 1, "quantity": 2}] * 2},
         "items[1].orderDetailId"),
        ("quantity/all", {"quantity": "2"}, "quantity"),
        ("quantity/all", {"quantity": -1}, "quantity"),
        ("quantity/all", {"quantity": None}, "quantity"),
    ],
)  # fmt: skip
def test_wrong_patch_body_is_a_400_naming_the_field(
    client: httpx.Client, suffix: str, body: Any, named: str
) -> None:
    answer = client.patch(f"/customer-orders/1/{suffix}", json=body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(named)


def test_quantity_beyond_the_maximum_is_a_400(client: httpx.Client) -> None:
    answer = client.patch("/customer-orders/1/quantity/all", json={"quantity": 10**9})
    assert answer.status_code == 400
    assert "at most" in answer.json()["message"]


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/customer-orders/999999", None),
        ("DELETE", "/customer-orders/999999", None),
        ("PATCH", "/customer-orders/999999/status", {"status": "paid"}),
        ("PATCH", "/customer-orders/999999/quantity",
         {"items": [{"orderDetailId": 1, "quantity": 2}]}),
        ("PATCH", "/customer-orders/999999/quantity/all", {"quantity": 2}),
        ("GET", "/products/999999", None),
        ("POST", "/embed/session", {"tool": "viewer", "origin": STORE, "designId": 9}),
        ("POST", "/embed/session", {"tool": "viewer", "origin": STORE, "orderId": 999999}),
    ],
)  # fmt: skip
def test_unknown_order_or_product_is_a_json_404(
    client: httpx.Client, method: str, url: str, body: Any
) -> None:
    answer = client.request(method, url, json=body)
    assert answer.status_code == 404
    assert "not found" in answer.json()["message"]


def test_unknown_route_is_a_json_404(client: httpx.Client) -> None:
    answer = client.get("/customer-order")
    assert answer.status_code == 404
    assert "route not found" in answer.json()["message"]


def test_wrong_method_is_a_json_405(client: httpx.Client) -> None:
    answer = client.put("/customer-orders/1")
    assert answer.status_code == 405
    assert "message" in answer.json()


def test_unknown_query_parameters_are_ignored(client: httpx.Client) -> None:
    assert client.get("/customer-orders", params={"page": "2"}).status_code == 200
