"""Randomised mutations against the emulator, then the incremental-sync guarantees."""

import random

import pytest
from event_helpers import EDITABLE, FINAL, Syncer, add_recent_carts, mutate, recently_active

from alter_pipeline import sync
from alter_pipeline.events import schema as ev
from alter_pipeline.sync import IncrementalPolicy
from alter_pipeline.warehouse import memory_connection

SEEDS = [1, 2, 3]


def events_of_last_sync(syncer) -> list[tuple[str, int]]:
    with memory_connection(syncer.lake_dir) as con:
        return con.execute(
            "select event_type, coalesce(order_id, product_id) from order_events "
            "where snapshot_id = (select max(snapshot_id) from order_events) order by sequence"
        ).fetchall()


def assert_same_rows(got: dict, expected: dict, ids) -> None:
    for order_id in ids:
        assert got.get(order_id) == expected.get(order_id), f"order {order_id} differs"


def test_first_sync_of_an_empty_lake_emits_no_created_flood(emulator, syncer_factory):
    syncer = syncer_factory(emulator)
    report = syncer.sync()
    assert report.mode == "full"
    assert report.events == {}


def test_first_sync_with_emit_initial_emits_one_created_event_per_order(emulator, syncer_factory):
    syncer = syncer_factory(emulator)
    report = syncer.sync(emit_initial=True)
    assert report.events[ev.ORDER_CREATED] == emulator.store.order_count()


@pytest.mark.parametrize("seed", SEEDS)
def test_incremental_sync_has_new_orders_and_every_change_to_recent_orders(
    emulator_factory, syncer_factory, seed
):
    emulator = emulator_factory(orders=300, seed=seed)
    add_recent_carts(emulator.store)
    syncer = syncer_factory(emulator, rotation_syncs=1000)
    syncer.sync()
    changes = mutate(emulator.store, random.Random(seed), 25, recently_active(emulator.store))
    report = syncer.sync()
    assert report.mode == "incremental"
    for table, key in (("orders", "order_id"), ("order_items", "order_item_id")):
        got, expected = syncer.rows(table, key), syncer.full_rows(table, key)
        if table == "orders":
            assert_same_rows(got, expected, changes.touched)
        else:
            touched = {k for k, row in expected.items() if row[1] in changes.touched}
            touched |= {k for k, row in got.items() if row[1] in changes.touched}
            assert_same_rows(got, expected, touched)


@pytest.mark.parametrize("seed", SEEDS)
def test_after_the_rotation_window_every_open_order_change_is_in(
    emulator_factory, syncer_factory, seed
):
    emulator = emulator_factory(orders=300, seed=seed)
    syncer = syncer_factory(emulator, recent_days=0, rotation_syncs=4)
    syncer.sync()
    open_orders = emulator.store.order_ids(["shopping_cart", "editable", "processing", "paid"])
    changes = mutate(emulator.store, random.Random(seed), 25, open_orders)
    for _ in range(4):
        syncer.sync()
    got, expected = syncer.rows("orders", "order_id"), syncer.full_rows("orders", "order_id")
    assert_same_rows(got, expected, changes.touched)
    still_open = [k for k, row in expected.items() if row[2] not in FINAL]
    assert_same_rows(got, expected, still_open)


@pytest.mark.parametrize("seed", SEEDS)
def test_reconcile_equals_a_full_sync_exactly(emulator_factory, syncer_factory, seed):
    emulator = emulator_factory(orders=300, seed=seed)
    syncer = syncer_factory(emulator, recent_days=0, rotation_syncs=1000)
    syncer.sync()
    mutate(emulator.store, random.Random(seed), 40, emulator.store.order_ids())
    syncer.sync()
    # A quantity edit of an open order outside the re-read set moves no total: only the
    # reconcile can see it.
    unseen = next(i for i in emulator.store.order_ids(EDITABLE) if i % 1000 not in (1, 2))
    item = emulator.store.get_order(unseen)["productItems"][0]
    emulator.store.set_quantity(unseen, item["id"], item["quantity"] % 9 + 1)
    assert syncer.sync().mode == "incremental"
    reconcile = syncer.sync(full=True)
    assert reconcile.mode == "full" and reconcile.changed_orders > 0  # missed by incremental
    for table, key in (("orders", "order_id"), ("order_items", "order_item_id")):
        assert syncer.rows(table, key) == syncer.full_rows(table, key)


def test_events_match_exactly_what_changed(emulator_factory, syncer_factory):
    emulator = emulator_factory(orders=200, seed=11)
    add_recent_carts(emulator.store)
    syncer = syncer_factory(emulator, rotation_syncs=1000)
    syncer.sync()
    store = emulator.store
    cart, editable, other, doomed = recently_active(store)[:4]
    store.set_status(cart, "paid")
    item = store.get_order(editable)["productItems"][0]
    if store.status_of(editable) in ("shopping_cart", "editable"):
        store.set_quantity(editable, item["id"], item["quantity"] + 1)
        expected_quantity = [(ev.ORDER_QUANTITY_CHANGED, editable)]
    else:
        expected_quantity = []
    store.delete_order(doomed)
    new_id = store.create_order()["id"]
    syncer.sync()
    expected = sorted(
        [
            (ev.ORDER_STATUS_CHANGED, cart),
            *expected_quantity,
            (ev.ORDER_DELETED, doomed),
            (ev.ORDER_CREATED, new_id),
        ]
    )
    assert sorted(events_of_last_sync(syncer)) == expected
    assert other not in {order_id for _, order_id in events_of_last_sync(syncer)}


def test_status_change_event_carries_from_and_to(emulator, syncer_factory):
    add_recent_carts(emulator.store)
    syncer = syncer_factory(emulator, rotation_syncs=1000)
    syncer.sync()
    order_id = recently_active(emulator.store)[0]
    before = emulator.store.status_of(order_id)
    emulator.store.set_status(order_id, "cancelled")
    syncer.sync()
    with memory_connection(syncer.lake_dir) as con:
        row = con.execute(
            "select payload::json->>'from', payload::json->>'to', "
            "payload::json->'before'->'order'->>'status' from order_events "
            "where order_id = $1",
            [order_id],
        ).fetchone()
    assert row == (before, "cancelled", before)


def test_the_same_change_gets_the_same_event_id_in_any_lake(emulator, syncer_factory, tmp_path):
    add_recent_carts(emulator.store)
    first, second = syncer_factory(emulator), syncer_factory(emulator)
    second.lake_dir = tmp_path / "second-lake"
    first.sync()
    second.sync()
    emulator.store.set_status(recently_active(emulator.store)[0], "paid")
    first.sync()
    second.sync()
    ids = [
        {
            r[0]
            for r in memory_connection(s.lake_dir)
            .execute("select event_id from order_events")
            .fetchall()
        }
        for s in (first, second)
    ]
    assert ids[0] == ids[1] and len(ids[0]) == 1


def test_history_answers_the_status_on_a_given_day_in_one_query(emulator, syncer_factory):
    add_recent_carts(emulator.store)
    syncer = syncer_factory(emulator, rotation_syncs=1000)
    syncer.sync()
    order_id = recently_active(emulator.store)[0]
    before = emulator.store.status_of(order_id)
    emulator.store.set_status(order_id, "cancelled")
    syncer.sync()
    with memory_connection(syncer.lake_dir) as con:
        rows = con.execute(
            "select status, is_current from orders_history where order_id = $1 "
            "order by valid_from, is_current",
            [order_id],
        ).fetchall()
    assert rows == [(before, False), ("cancelled", True)]


def test_incremental_sync_uses_a_small_share_of_a_full_syncs_requests(
    emulator_factory, syncer_factory
):
    emulator = emulator_factory(orders=2000, seed=5)
    add_recent_carts(emulator.store)
    syncer = syncer_factory(emulator)
    syncer.sync()
    full_requests = syncer.client.stats.snapshot().requests
    mutate(emulator.store, random.Random(5), 20, recently_active(emulator.store))
    report = syncer.sync()
    incremental_requests = syncer.client.stats.snapshot().requests - full_requests
    # Every request accounted for: the storefront check, the batch re-reads (50 ids each),
    # the self-check, the products listing (its pages and its final total).
    batches = -(-report.reread // 50)
    expected = 1 + batches + report.check.requests + report.products.pages + 1
    assert report.mode == "incremental" and incremental_requests == expected
    assert incremental_requests < full_requests / 2


def test_refresh_of_a_few_orders_records_their_changes_at_once(emulator, syncer_factory):
    from alter_pipeline.events.incremental import refresh_orders
    from alter_pipeline.lake import Lake

    syncer = syncer_factory(emulator)
    syncer.sync()
    order_id = emulator.store.order_ids(["shopping_cart"])[0]
    emulator.store.set_status(order_id, "cancelled")
    report = refresh_orders(syncer.client, Lake(syncer.lake_dir), [order_id])
    assert report.events == {ev.ORDER_STATUS_CHANGED: 1}
    assert "cancelled" in syncer.rows("orders", "order_id")[order_id]


def test_a_corrupt_batch_answer_deletes_nothing(emulator_factory, syncer_factory):
    from alter_pipeline.emulator.faults import BadRecordFault

    # Every page and batch answer carries one record whose id is not a number.
    emulator = emulator_factory(orders=200, seed=3, faults=[BadRecordFault(1.0)])
    add_recent_carts(emulator.store)
    syncer = syncer_factory(emulator)
    syncer.sync()
    before = set(syncer.rows("orders", "order_id"))
    report = syncer.sync()
    assert report.rejected and report.deleted == 0
    assert before <= set(syncer.rows("orders", "order_id"))


def rows_in_file_order(syncer: Syncer, table: str) -> list[tuple]:
    with memory_connection(syncer.lake_dir) as con:
        return con.execute(f"select * from {table}").fetchall()


def test_an_incremental_merge_written_span_by_span_equals_one_written_whole(
    emulator_factory, tmp_path, monkeypatch
):
    emulator = emulator_factory(orders=300, seed=5)
    add_recent_carts(emulator.store)
    whole, spans = (
        Syncer(emulator, tmp_path / name, IncrementalPolicy(rotation_syncs=4))
        for name in ("whole", "spans")
    )
    whole.sync(), spans.sync()
    mutate(emulator.store, random.Random(5), 25, recently_active(emulator.store))
    assert whole.sync().mode == "incremental"
    monkeypatch.setattr(sync, "MERGE_SPAN_ORDERS", 7)  # ~45 spans of order ids
    assert spans.sync().mode == "incremental"
    for table in ("orders", "order_items"):
        rows = rows_in_file_order(spans, table)
        assert rows == rows_in_file_order(whole, table)
        assert [row[:2] for row in rows] == sorted(row[:2] for row in rows)
    whole.close(), spans.close()
