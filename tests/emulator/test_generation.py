"""The synthetic storefront: deterministic in its seed, and realistic."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alter_pipeline.contract import ORDER_STATUSES
from alter_pipeline.emulator import EmulatorConfig, RunningEmulator, Store
from alter_pipeline.emulator.config import REFERENCE_NOW

from ._http import client_of

Factory = Callable[..., RunningEmulator]


@pytest.fixture(scope="module")
def big_store() -> Store:
    return Store(EmulatorConfig(orders=3000, products=24, seed=11))


@pytest.fixture(scope="module")
def orders(big_store: Store) -> list[dict[str, Any]]:
    return big_store.orders_list()


def items_of(orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for order in orders for item in order["productItems"]]


def test_same_seed_serves_the_same_bytes(emulator_factory: Factory) -> None:
    bodies = []
    for _ in range(2):
        with client_of(emulator_factory(seed=3)) as client:
            bodies.append(client.get("/customer-orders", params={"limit": 50}).content)
            bodies[-1] += client.get("/customer-orders/5").content
    assert bodies[0] == bodies[1]


def test_same_seed_builds_the_same_store() -> None:
    config = EmulatorConfig(orders=300, seed=5)
    assert Store(config).snapshot() == Store(config).snapshot()


def test_another_seed_builds_another_store() -> None:
    first = Store(EmulatorConfig(orders=50, seed=1)).orders_list()
    assert first != Store(EmulatorConfig(orders=50, seed=2)).orders_list()


def test_every_status_occurs(orders: list[dict[str, Any]]) -> None:
    counts = Counter(o["orderStatus"] for o in orders)
    assert set(counts) == set(ORDER_STATUSES)
    assert counts.most_common(1)[0][0] == "completed"


def test_orders_have_about_three_items(orders: list[dict[str, Any]]) -> None:
    sizes = [len(o["productItems"]) for o in orders]
    assert min(sizes) == 1
    assert max(sizes) >= 6
    assert 2.5 <= statistics.mean(sizes) <= 3.5


def test_item_ids_are_unique_across_the_store(orders: list[dict[str, Any]]) -> None:
    ids = [item["id"] for item in items_of(orders)]
    assert len(ids) == len(set(ids))


def test_created_at_spreads_over_the_year_before_now(orders: list[dict[str, Any]]) -> None:
    created = sorted(datetime.fromisoformat(o["createdAt"]) for o in orders)
    assert created[0] >= REFERENCE_NOW - timedelta(days=365)
    assert created[-1] < REFERENCE_NOW
    assert created[-1] - created[0] > timedelta(days=300)


def test_ids_follow_creation_time(orders: list[dict[str, Any]]) -> None:
    by_id = [o["createdAt"] for o in sorted(orders, key=lambda o: o["id"])]
    assert by_id == sorted(by_id)


def test_item_updates_fall_between_creation_and_now(orders: list[dict[str, Any]]) -> None:
    for order in orders[:500]:
        created = datetime.fromisoformat(order["createdAt"])
        for item in order["productItems"]:
            updated = datetime.fromisoformat(item["updatedAt"]).replace(tzinfo=UTC)
            assert created <= updated < REFERENCE_NOW


def test_documented_nulls_occur(orders: list[dict[str, Any]]) -> None:
    items = items_of(orders)
    assert any(o["productGroup"] is None for o in orders)
    assert any(o["productGroup"] is not None for o in orders)
    assert any(i["variant"]["minOrderQuantity"] is None for i in items)
    assert any(i["variant"]["minOrderQuantity"] is not None for i in items)
    assert any(i["variant"]["metadata"] is None for i in items)


def test_measure_size_is_null_for_apparel_and_set_for_mugs(orders: list[dict[str, Any]]) -> None:
    for item in items_of(orders):
        measure = item["size"]["measureSize"]
        if item["size"]["name"]["en"] in ("S", "M", "L", "XL", "XXL"):
            assert measure is None
        if "ml" in item["size"]["name"]["en"]:
            assert set(measure) == {"D", "H"}


def test_empty_objects_occur_as_the_api_sends_them(orders: list[dict[str, Any]]) -> None:
    # A one-size cap has a size with no dimensions, a made-to-order print no SKU: `{}`,
    # which is not null (the lake keeps the difference).
    items = items_of(orders)
    assert any(i["size"]["measureSize"] == {} for i in items)
    assert any(i["variant"]["metadata"] == {} for i in items)
    assert all(
        i["size"]["measureSize"] == {} for i in items if i["size"]["name"]["en"] == "One size"
    )


def test_names_are_bilingual_with_polish_letters(orders: list[dict[str, Any]]) -> None:
    polish = {i["material"]["name"]["pl"] for i in items_of(orders)}
    polish |= {i["color"]["name"]["pl"] for i in items_of(orders)}
    assert any(set(name) & set("ąćęłńóśźż") for name in polish)
    assert all({"pl", "en"} == set(i["printType"]["name"]) for i in items_of(orders))


def test_catalog_mixes_product_kinds(big_store: Store) -> None:
    names = " ".join(p.name for p in big_store.catalog.products).lower()
    for kind in ("t-shirt", "hoodie", "mug", "poster", "tote"):
        assert kind in names


def test_prices_are_euro_cents(orders: list[dict[str, Any]]) -> None:
    units = {i["unitPrice"]["value"] for i in items_of(orders)}
    assert any(u != int(u) for u in units)
    assert all(u > 0 for u in units)
