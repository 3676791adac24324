"""State changes persist for the life of the server and are seen by later reads."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.emulator.errors import Conflict, NotFound


def detail(client: httpx.Client, order_id: int) -> dict[str, Any]:
    answer = client.get(f"/customer-orders/{order_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["order"]


def cart(emulator: RunningEmulator, items: int = 2) -> dict[str, Any]:
    """A new editable order with `items` lines of quantity 1."""
    product = next(p for p in emulator.store.catalog.products if len(p.variants) >= items)
    lines = [(v.id, 1) for v in product.variants[:items]]
    return emulator.store.create_order(product_id=product.id, lines=lines)


def test_status_update_persists(emulator: RunningEmulator, client: httpx.Client) -> None:
    order_id = emulator.store.order_ids(["completed"])[0]
    client.patch(f"/customer-orders/{order_id}/status", json={"status": "cancelled"})
    assert detail(client, order_id)["orderStatus"] == "cancelled"
    listed = client.get("/customer-orders", params={"order_status": "cancelled", "limit": 50})
    assert order_id in [o["id"] for o in listed.json()["order"]["items"]]


def test_quantity_update_persists_and_recomputes_totals(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    order = cart(emulator)
    first, second = order["productItems"]
    body = {"items": [{"orderDetailId": first["id"], "quantity": 3}]}
    assert client.patch(f"/customer-orders/{order['id']}/quantity", json=body).status_code == 200
    after = emulator.store.get_order(order["id"])
    line = after["productItems"][0]
    assert line["quantity"] == 3
    assert line["totalPrice"]["value"] == line["unitPrice"]["value"] * 3
    expected_total = line["totalPrice"]["value"] + after["productItems"][1]["totalPrice"]["value"]
    assert after["totalPrice"]["value"] == expected_total
    assert after["productItems"][1]["quantity"] == second["quantity"] == 1
    assert after["productItems"][1]["updatedAt"] == second["updatedAt"]


def test_quantity_update_moves_updated_at_forward(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    order = cart(emulator)
    item = order["productItems"][0]
    body = {"items": [{"orderDetailId": item["id"], "quantity": 2}]}
    client.patch(f"/customer-orders/{order['id']}/quantity", json=body)
    assert detail(client, order["id"])["productItems"][0]["updatedAt"] > item["updatedAt"]


def test_quantity_update_is_seen_by_the_list(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    order = cart(emulator, items=1)
    item_id = order["productItems"][0]["id"]
    body = {"items": [{"orderDetailId": item_id, "quantity": 9}]}
    client.patch(f"/customer-orders/{order['id']}/quantity", json=body)
    newest = client.get("/customer-orders", params={"order_by": "id", "limit": 1}).json()
    assert newest["order"]["items"][0]["productItems"][0]["quantity"] == 9


def test_quantity_all_sets_every_item(emulator: RunningEmulator, client: httpx.Client) -> None:
    order = cart(emulator, items=3)
    answer = client.patch(f"/customer-orders/{order['id']}/quantity/all", json={"quantity": 4})
    assert answer.json() == {"success": True, "orderId": order["id"], "quantity": 4}
    assert [i["quantity"] for i in detail(client, order["id"])["productItems"]] == [4, 4, 4]


def test_delete_removes_the_order_everywhere(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    victim, neighbour = emulator.store.order_ids()[8:10]
    assert client.delete(f"/customer-orders/{victim}").status_code == 200
    assert client.get(f"/customer-orders/{victim}").status_code == 404
    assert client.delete(f"/customer-orders/{victim}").status_code == 404
    ids = [victim, neighbour]
    batch = client.post("/customer-orders/batch", json={"customerOrderIds": ids}).json()
    assert [o["id"] for o in batch["orders"]] == [neighbour]
    assert client.get("/customer-orders", params={"limit": 1}).json()["order"]["total"] == 119


@pytest.mark.parametrize("status", ["processing", "paid", "completed", "cancelled"])
def test_quantity_change_on_a_locked_order_is_a_409(
    emulator: RunningEmulator, client: httpx.Client, status: str
) -> None:
    order = cart(emulator)
    emulator.store.set_status(order["id"], status)
    item_id = order["productItems"][0]["id"]
    body = {"items": [{"orderDetailId": item_id, "quantity": 5}]}
    answer = client.patch(f"/customer-orders/{order['id']}/quantity", json=body)
    assert answer.status_code == 409
    assert status in answer.json()["message"]
    assert emulator.store.get_order(order["id"])["productItems"][0]["quantity"] == 1


def test_quantity_all_on_a_locked_order_is_a_409(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    order = cart(emulator)
    emulator.store.set_status(order["id"], "paid")
    answer = client.patch(f"/customer-orders/{order['id']}/quantity/all", json={"quantity": 2})
    assert answer.status_code == 409


def test_unknown_order_detail_id_is_a_400_naming_it(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    order = cart(emulator)
    body = {
        "items": [
            {"orderDetailId": order["productItems"][0]["id"], "quantity": 2},
            {"orderDetailId": 987654, "quantity": 2},
        ]
    }
    answer = client.patch(f"/customer-orders/{order['id']}/quantity", json=body)
    assert answer.status_code == 400
    assert "987654" in answer.json()["message"]
    # All or nothing: the valid line did not change either.
    assert emulator.store.get_order(order["id"])["productItems"][0]["quantity"] == 1


def test_status_change_unlocks_and_locks_edits(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    order = cart(emulator)
    url = f"/customer-orders/{order['id']}"
    client.patch(url + "/status", json={"status": "paid"})
    assert client.patch(url + "/quantity/all", json={"quantity": 2}).status_code == 409
    client.patch(url + "/status", json={"status": "editable"})
    assert client.patch(url + "/quantity/all", json={"quantity": 2}).status_code == 200


def test_created_order_is_served_newest_first(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    order = emulator.store.create_order(status="editable", design="Koszulka dla Łucji")
    newest = client.get("/customer-orders", params={"limit": 1}).json()["order"]
    assert newest["items"][0]["id"] == order["id"]
    assert newest["total"] == 121
    assert detail(client, order["id"])["designName"] == "Koszulka dla Łucji"


def test_created_order_ids_and_item_ids_are_new(emulator: RunningEmulator) -> None:
    before = emulator.store.orders_detail()
    order = emulator.store.create_order()
    item_ids = {i["id"] for o in before for i in o["productItems"]}
    assert order["id"] > max(o["id"] for o in before)
    assert not {i["id"] for i in order["productItems"]} & item_ids


def test_in_process_helpers_raise_the_api_errors(emulator: RunningEmulator) -> None:
    store = emulator.store
    with pytest.raises(NotFound):
        store.delete_order(999999)
    order = cart(emulator)
    store.set_status(order["id"], "completed")
    with pytest.raises(Conflict):
        store.set_quantity(order["id"], order["productItems"][0]["id"], 2)
    store.set_quantity(order["id"], order["productItems"][0]["id"], 2, force=True)
    assert store.get_order(order["id"])["productItems"][0]["quantity"] == 2


def test_snapshot_reflects_mutations(emulator: RunningEmulator) -> None:
    store = emulator.store
    first, second = store.order_ids()[:2]
    store.set_status(first, "paid")
    store.delete_order(second)
    snapshot = store.snapshot()
    orders = {o["id"]: o for o in snapshot["orders"]}
    assert orders[first]["orderStatus"] == "paid"
    assert second not in orders
    assert len(snapshot["products"]) == 12
    assert [o["id"] for o in store.orders_detail()] == sorted(orders)


def test_fresh_state_for_every_test_part_one(emulator: RunningEmulator) -> None:
    emulator.store.delete_order(1)
    assert emulator.store.order_count() == 119


def test_fresh_state_for_every_test_part_two(emulator: RunningEmulator) -> None:
    assert emulator.store.order_count() == 120
    assert emulator.counters.count() == 0
