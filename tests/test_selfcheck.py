"""Locating where a sync's order ids and the API's listing differ, over the emulator's real
listing (loopback HTTP): what is found, what it costs, and how it behaves while orders change."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from alter_pipeline import selfcheck
from alter_pipeline.api import AlterClient
from alter_pipeline.sync import CheckFigures, SelfCheck


@pytest.fixture
def big_store(emulator_factory):
    return emulator_factory(orders=2000, seed=3)


def listing(emulator: Any, status: str | None = None) -> tuple[AlterClient, SelfCheck]:
    client = AlterClient(emulator.base_url, emulator.key, emulator.token)
    return client, SelfCheck(client, CheckFigures())


def reads_allowed(differences: int, size: int) -> int:
    """The documented cost: about log2(N / 50) + 1 page reads a difference."""
    return differences * (math.ceil(math.log2(size / selfcheck.PAGE)) + 2)


@pytest.mark.parametrize("deleted", [1, 5, 20])
def test_locate_finds_deleted_orders_in_about_log_pages_each(big_store, deleted):
    store = big_store.store
    held = selfcheck.HeldIds(store.order_ids())
    doomed = random.Random(deleted).sample(store.order_ids(), deleted)
    for order_id in doomed:
        store.delete_order(order_id)
    client, check = listing(big_store)
    with client:
        found = selfcheck.locate(held, check.listing(), store.order_count(), budget=1000)
    assert found.extra == set(doomed) and found.missing == {}
    assert found.reads <= reads_allowed(deleted, len(held))


def test_locate_returns_the_rows_of_orders_not_held(big_store):
    store = big_store.store
    ids = store.order_ids()
    unknown = set(random.Random(1).sample(ids, 4))
    held = selfcheck.HeldIds(set(ids) - unknown)
    client, check = listing(big_store)
    with client:
        found = selfcheck.locate(held, check.listing(), store.order_count(), budget=1000)
    assert found.extra == set() and found.missing.keys() == unknown
    assert all("isSeenByOwner" in row for row in found.missing.values())  # the list shape


def test_locate_in_a_status_listing_finds_orders_that_left_and_entered_it(big_store):
    store = big_store.store
    paid = store.order_ids(["paid"])
    held = selfcheck.HeldIds(paid)
    left, entered = paid[3], store.order_ids(["completed"])[7]
    store.set_status(left, "completed")
    store.set_status(entered, "paid")
    store.set_status(store.order_ids(["completed"])[20], "paid")  # a net change of +1
    client, check = listing(big_store)
    with client:
        found = selfcheck.locate(held, check.listing("paid"), len(paid) + 1, budget=1000)
    assert left in found.extra and entered in found.missing


def test_every_extra_found_while_orders_are_deleted_is_really_gone(big_store):
    store = big_store.store
    held = selfcheck.HeldIds(store.order_ids())
    rng = random.Random(9)
    for order_id in rng.sample(store.order_ids(), 10):
        store.delete_order(order_id)
    client, check = listing(big_store)

    def read_while_deleting(offset: int) -> Any:
        store.delete_order(rng.choice(store.order_ids()))  # a deletion before every read
        return check.listing()(offset)

    with client:
        found = selfcheck.locate(held, read_while_deleting, store.order_count(), budget=300)
    alive = set(store.order_ids())
    assert found.extra and found.extra.isdisjoint(alive)


def test_converge_agrees_while_orders_are_created_and_deleted(big_store):
    store = big_store.store
    held = selfcheck.HeldIds(store.order_ids())
    rng = random.Random(4)
    client, check = listing(big_store)
    changes = iter(range(30))  # changes land during the first rounds, then the store rests

    def churning(read: Callable[[int], Any]) -> Callable[[int], Any]:
        def churned(offset: int) -> Any:
            if next(changes, None) is not None:
                if rng.random() < 0.5:
                    store.create_order()
                else:
                    store.delete_order(rng.choice(store.order_ids()))
            return read(offset)

        return churned

    def confirm(extra: set[int]) -> set[int]:
        return extra - set(store.order_ids())

    with client:
        result = selfcheck.converge(
            held, churning(check.newest), churning(check.listing()), confirm, budget=200,
            escalate=False,
        )  # fmt: skip
    assert result.agreed, result.reason
    assert set(held.between(-math.inf, math.inf)) == set(store.order_ids())


def test_converge_escalates_before_locating_a_costly_difference(big_store):
    store = big_store.store
    held = selfcheck.HeldIds(store.order_ids())
    for order_id in store.order_ids()[::4]:  # 500 deletions: a full listing is cheaper
        store.delete_order(order_id)
    client, check = listing(big_store)
    with client:
        result = selfcheck.converge(
            held, check.newest, check.listing(), set, budget=selfcheck.listing_cost(len(held)),
            escalate=True,
        )  # fmt: skip
    assert result.path == "escalate" and result.locate_reads == 0
    assert "full listing" in result.reason


def test_converge_gives_up_within_its_rounds_when_the_store_never_rests(big_store):
    store = big_store.store
    held = selfcheck.HeldIds(store.order_ids())
    client, check = listing(big_store)

    def deleting_first(offset: int) -> Any:
        store.delete_order(store.order_ids()[-1])  # the newest order goes before every read
        return check.newest(offset)

    with client:
        result = selfcheck.converge(
            held, deleting_first, check.listing(), lambda extra: extra, budget=500,
            escalate=False,
        )  # fmt: skip
    assert result.path == "unresolved" and result.rounds == selfcheck.MAX_ROUNDS
    assert "rounds" in result.reason


def test_an_empty_listing_makes_every_held_id_extra(emulator_factory):
    emulator = emulator_factory(orders=0)
    client, check = listing(emulator)
    with client:
        found = selfcheck.locate(selfcheck.HeldIds([3, 5, 8]), check.listing(), 0, budget=5)
    assert found.extra == {3, 5, 8} and found.reads == 1
