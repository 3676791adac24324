"""Syncs against a store whose shoppers keep working: every run green, the tables exact.

The emulator runs in live mode (new carts, quantity edits, checkouts, cancellations, abandoned
carts deleted and old carts and cancelled orders purged, as a Poisson process) while full and
incremental syncs run through Dagster with their asset checks. Then the shoppers pause, one
reconcile runs, and the lake is compared with the emulator's own state.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest
from reliability_helpers import event_problems, lake_events, lake_tables, store_tables
from reliability_helpers import table_differences as differences

from alter_pipeline.assets.checks import asset_checks
from alter_pipeline.assets.sync import build_alter_sync
from alter_pipeline.emulator.faults import DeleteServedFault
from alter_pipeline.events.schema import ORDER_DELETED
from alter_pipeline.lake import Lake
from alter_pipeline.resources import AlterApiResource, LakeResource

alter_sync = build_alter_sync()

# Syncs while the shoppers act: full (reconcile) and incremental, as the schedules mix them.
LIVE_SYNCS = (True, False, True, False, True, False)
# At 25 actions a second four syncs see ~100 actions, ghosts and deletions among them; at 1 a
# second all six are needed for carts to be created and abandoned at all.
ROUNDS = {1: len(LIVE_SYNCS), 25: 4}
# One page in flight and 20 ms a response: a full listing of 1,500 orders takes ~0.7 s, long
# enough for 25 actions a second to delete orders on pages already read (ghosts).
LIVE_STORE = {"orders": 1500, "latency_ms": 20}


class Shop:
    """One emulator and one lake, synced through real Dagster runs with every asset check."""

    def __init__(self, emulator: Any, data_dir: Path, concurrency: int = 8) -> None:
        self.emulator = emulator
        self.lake = Lake(data_dir)
        self.instance = dg.DagsterInstance.ephemeral()
        self.resources = {
            "alter_api": AlterApiResource(
                base_url=emulator.base_url,
                api_key=emulator.key,
                api_token=emulator.token,
                concurrency=concurrency,
            ),
            "lake": LakeResource(data_dir=str(data_dir)),
        }
        self.held_ever: set[int] = set()
        self.checks: list[dict[str, Any]] = []  # each sync's self-check figures

    def sync(self, *, full: bool) -> dict[str, Any]:
        """One sync; fails the test unless the run and every check passed. Returns the
        orders materialization's metadata."""
        result = dg.materialize(
            [alter_sync, *asset_checks],
            resources=self.resources,
            run_config={"ops": {"alter_sync": {"config": {"full": full}}}},
            instance=self.instance,
            raise_on_error=False,
        )
        failures = [e for e in result.all_events if e.is_step_failure]
        assert result.success, failures[0].step_failure_data.error.message if failures else ""
        failed = [
            f"{c.check_name}: {c.metadata}" for c in result.get_asset_check_evaluations()
            if not c.passed
        ]  # fmt: skip
        assert not failed, f"{'full' if full else 'incremental'} sync: failed checks {failed}"
        snapshot = self.lake.current()
        assert snapshot is not None
        orders = pq.read_table(snapshot.table_dir("orders"), columns=["order_id"])
        self.held_ever |= set(orders.column("order_id").to_pylist())
        metadata = next(
            m.materialization.metadata
            for m in result.get_asset_materialization_events()
            if m.asset_key.path == ["orders"]
        )
        self.checks.append(metadata["self_check"].value)
        return metadata

    def deleted_events(self) -> Counter[int]:
        return Counter(
            e["order_id"] for e in lake_events(self.lake) if e["event_type"] == ORDER_DELETED
        )

    def current_history(self) -> dict[int, str]:
        snapshot = self.lake.current()
        assert snapshot is not None
        rows = pq.read_table(snapshot.table_dir("orders_history")).to_pylist()
        current = [r for r in rows if r["is_current"]]
        assert len(current) == len({r["order_id"] for r in current}), "two current rows"
        return {r["order_id"]: r["status"] for r in current}


def exact_problems(shop: Shop) -> list[str]:
    """How the lake differs from the store at rest: tables, history, events."""
    store = shop.emulator.store
    problems = differences(store_tables(store), lake_tables(shop.lake))
    statuses = {o["id"]: o["orderStatus"] for o in store.orders_list()}
    if shop.current_history() != statuses:
        problems.append("orders_history: current rows differ from the store's orders")
    gone = shop.held_ever - set(statuses)
    deleted = shop.deleted_events()
    problems += [f"order {i}: {deleted[i]} order.deleted events" for i in gone if deleted[i] != 1]
    problems += [f"order {i}: deleted event but alive" for i in deleted.keys() & statuses.keys()]
    return problems + event_problems(shop.lake, from_nothing=False)


@pytest.mark.parametrize("rate", [1, 25])
def test_syncs_stay_green_and_end_exact_under_live_traffic(emulator_factory, tmp_path, rate):
    emulator = emulator_factory(**LIVE_STORE, live=True, live_rate=rate, seed=rate)
    shop = Shop(emulator, tmp_path, concurrency=1)
    for full in LIVE_SYNCS[: ROUNDS[rate]]:
        shop.sync(full=full)
    emulator.pause_live()
    shop.sync(full=True)
    actions = emulator.app.state.runtime.shoppers.actions
    assert actions["create_cart"] and actions["abandon"] + actions["purge"], actions
    assert exact_problems(shop) == []
    found = Counter()
    for check in shop.checks:
        found.update({k: check[k] for k in ("ghosts_dropped", "deletions_found", "locate_reads")})
    print(f"{rate}/s: {dict(actions)}; self-checks found {dict(found)}")


def test_full_sync_drops_an_order_deleted_after_its_page_was_read(emulator, tmp_path):
    shop = Shop(emulator, tmp_path)
    shop.sync(full=True)
    fault = DeleteServedFault(at=2)
    emulator.set_faults([fault])
    metadata = shop.sync(full=True)
    (ghost,) = fault.deleted
    assert metadata["orders_ghosts_dropped"].value == 1
    assert ghost not in lake_tables(shop.lake)["orders"]
    assert shop.deleted_events()[ghost] == 1
    assert exact_problems(shop) == []


def test_first_full_sync_drops_a_ghost_without_an_event(emulator, tmp_path):
    fault = DeleteServedFault(at=2, count=3)
    emulator.set_faults([fault])
    shop = Shop(emulator, tmp_path)
    shop.sync(full=True)
    assert lake_tables(shop.lake)["orders"].keys().isdisjoint(fault.deleted)
    assert shop.deleted_events() == Counter()
    assert differences(store_tables(emulator.store), lake_tables(shop.lake)) == []


def test_incremental_sync_finds_deletions_of_old_orders_in_the_same_sync(
    emulator_factory, tmp_path
):
    emulator = emulator_factory(orders=1500)
    shop = Shop(emulator, tmp_path)
    shop.sync(full=True)
    old = emulator.store.order_ids(["completed", "cancelled"])[:3]
    for order_id in old:
        emulator.store.delete_order(order_id)
    metadata = shop.sync(full=False)
    assert metadata["mode"].value == "incremental"
    assert metadata["orders_deletions_found"].value == 3
    # about log2(1500 / 50) + 1 page reads a deletion, far from a listing's 31
    assert metadata["self_check"].value["locate_reads"] <= 3 * 6
    assert all(shop.deleted_events()[i] == 1 for i in old)
    assert exact_problems(shop) == []


def test_incremental_sync_finds_a_status_change_of_a_completed_order(emulator, tmp_path):
    shop = Shop(emulator, tmp_path)
    shop.sync(full=True)
    (order_id,) = emulator.store.order_ids(["completed"])[:1]
    emulator.store.set_status(order_id, "cancelled")
    metadata = shop.sync(full=False)
    assert metadata["orders_status_changes_found"].value == 1
    assert lake_tables(shop.lake)["orders"][order_id]["status"] == "cancelled"
    assert exact_problems(shop) == []


def test_incremental_sync_of_another_store_escalates_to_a_full_listing(emulator_factory, tmp_path):
    shop = Shop(emulator_factory(orders=300, seed=1), tmp_path)
    shop.sync(full=True)
    other = emulator_factory(orders=200, seed=2)  # the same storefront id, other orders
    shop.emulator = other
    shop.resources["alter_api"] = AlterApiResource(
        base_url=other.base_url, api_key=other.key, api_token=other.token
    )
    metadata = shop.sync(full=False)
    assert metadata["mode"].value == "full"
    assert "full listing" in metadata["escalated_to_full"].value
    assert differences(store_tables(other.store), lake_tables(shop.lake)) == []


def test_metadata_reports_the_self_check(emulator, tmp_path):
    shop = Shop(emulator, tmp_path)
    shop.sync(full=True)
    metadata = shop.sync(full=False)
    check = json.loads(json.dumps(metadata["self_check"].value))
    assert check["path"] == "agreed"
    assert check["total_reads"] == 1 and check["locate_reads"] == 0
    assert check["status_reads"] == 6  # one limit=1 read per status
