"""Records that break the contract: rejected with the reason and the raw JSON, never written to
the main tables, never mistaken for a deletion, retried by the next sync, and named by a red
asset check. Also: a change that repeats an earlier one is an event again."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest
from reliability_helpers import fast_client, lake_events, lake_tables, store_tables

from alter_pipeline.assets.checks import asset_checks
from alter_pipeline.assets.sync import build_alter_sync
from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.emulator.faults import ContractBreakFault
from alter_pipeline.lake import Lake
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.sync import SyncReport, run_sync

alter_sync = build_alter_sync()

Factory = Callable[..., RunningEmulator]


class Syncs:
    """Syncs of one emulator into one lake, at the emulator's clock."""

    def __init__(self, emulator: RunningEmulator, data_dir: Path) -> None:
        self.emulator = emulator
        self.lake = Lake(data_dir)
        self.client = fast_client(emulator)

    def __call__(self, **options: Any) -> SyncReport:
        return run_sync(self.client, self.lake, now=self.emulator.store.now(), **options)

    def events(self, order_id: int) -> list[str]:
        return [e["event_type"] for e in lake_events(self.lake) if e["order_id"] == order_id]

    def rejected(self) -> list[dict[str, Any]]:
        snapshot = self.lake.current()
        assert snapshot is not None
        return pq.read_table(snapshot.table_dir("rejected_records")).to_pylist()


@pytest.fixture
def syncs(emulator_factory: Factory, tmp_path: Path) -> Iterator[Syncs]:
    made = Syncs(emulator_factory(orders=100, products=6, seed=17), tmp_path / "data")
    yield made
    made.client.close()


@pytest.mark.parametrize("kind", ["missing_id", "price_not_number"])
def test_an_order_that_turns_bad_keeps_its_last_valid_row_and_is_not_deleted(
    syncs: Syncs, kind: str
) -> None:
    victim = syncs.emulator.store.order_ids()[10]
    syncs(full=True, emit_initial=True)
    before = lake_tables(syncs.lake)["orders"][victim]
    syncs.emulator.set_faults([ContractBreakFault(kind, order_ids=[victim])])
    report = syncs(full=True)
    assert len(report.rejected) == 1
    assert lake_tables(syncs.lake)["orders"].get(victim) == before
    assert syncs.events(victim) == ["order.created"]
    (rejected,) = syncs.rejected()
    assert rejected["entity"] == "order" and rejected["reason"]
    assert f'/{victim}"' in rejected["raw_json"]


def test_a_broken_new_order_is_rejected_by_the_incremental_sync(syncs: Syncs) -> None:
    syncs(full=True)
    new = syncs.emulator.store.create_order()["id"]
    syncs.emulator.set_faults([ContractBreakFault("missing_id", order_ids=[new])])
    report = syncs()
    assert report.mode == "incremental" and len(report.rejected) == 1
    assert f'/{new}"' in syncs.rejected()[0]["raw_json"]
    assert new not in lake_tables(syncs.lake)["orders"]


def test_a_rejected_new_order_arrives_with_the_next_sync_once_fixed(syncs: Syncs) -> None:
    syncs(full=True)
    store = syncs.emulator.store
    bad, good = store.create_order()["id"], store.create_order()["id"]
    syncs.emulator.set_faults([ContractBreakFault("unknown_status", order_ids=[bad])])
    syncs()
    assert good in lake_tables(syncs.lake)["orders"]
    syncs.emulator.set_faults([])
    syncs()
    assert lake_tables(syncs.lake) == store_tables(store)
    assert syncs.rejected() == []


def test_a_status_that_returns_to_an_earlier_value_is_an_event_each_time(syncs: Syncs) -> None:
    store = syncs.emulator.store
    order_id = store.create_order()["id"]
    syncs(full=True, emit_initial=True)
    for status in ("editable", "shopping_cart", "editable"):
        store.set_status(order_id, status)
        syncs()
    moves = [
        (payload["from"], payload["to"])
        for payload in (
            json.loads(e["payload"]) for e in lake_events(syncs.lake) if e["order_id"] == order_id
        )
        if "from" in payload
    ]
    expected = [("shopping_cart", "editable"), ("editable", "shopping_cart")]
    assert moves == [*expected, ("shopping_cart", "editable")]


def test_the_rejected_records_check_is_red_and_names_the_records(
    syncs: Syncs, tmp_path: Path
) -> None:
    victims = syncs.emulator.store.order_ids()[3:5]
    syncs.emulator.set_faults([ContractBreakFault("price_not_number", order_ids=victims)])
    emulator = syncs.emulator
    resources = {
        "alter_api": AlterApiResource(
            base_url=emulator.base_url, api_key=emulator.key, api_token=emulator.token
        ),
        "lake": LakeResource(data_dir=str(tmp_path / "data")),
    }
    result = dg.materialize([alter_sync, *asset_checks], resources=resources, raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    red = checks["no_rejected_records"]
    assert not red.passed and red.metadata["offending_count"].value == 2
    named = red.metadata["offending_ids"].value
    assert [n.split(":")[0] for n in named] == [f"order {i}" for i in victims]
    assert all("totalPrice.value" in n for n in named)
    assert checks["order_id_unique"].passed and checks["items_reference_orders"].passed
