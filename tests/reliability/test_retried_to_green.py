"""Shoppers delete abandoned carts that the rules want to cancel (found by the soak): the run
that finds one gone skips it and stays green, records the deletion in the lake, and the next
run does not plan it again."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from reliability_helpers import RULES, fast_client, lake_events, lake_tables

from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.lake import Lake
from alter_pipeline.rules import parse_rules
from alter_pipeline.rules.apply import apply_rules
from alter_pipeline.sync import refresh_orders, run_sync

NOW = datetime(2026, 11, 20, 12, 5, tzinfo=UTC)


def test_an_order_deleted_behind_the_lake_is_skipped_and_recorded_as_deleted(
    emulator_factory: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    emulator = emulator_factory(orders=100, seed=3)
    lake = Lake(tmp_path)
    ruleset = parse_rules(textwrap.dedent(RULES))
    with fast_client(emulator) as client:
        run_sync(client, lake, full=True, now=emulator.store.now())
        gone = emulator.store.order_ids(["shopping_cart"])[0]  # an old cart the rules cancel
        emulator.store.delete_order(gone)
        first = apply_rules(client, lake, ruleset, run_id="first", now=NOW, refresh=refresh_orders)
        second = apply_rules(
            client, lake, ruleset, run_id="second", now=NOW, refresh=refresh_orders
        )
    assert first.failed == [] and gone in [r.order_id for r in first.outcome("skipped")]
    assert second.failed == [] and second.applied == [] and second.rows == []
    assert gone not in lake_tables(lake)["orders"]
    deleted = [e for e in lake_events(lake) if e["order_id"] == gone]
    assert [e["event_type"] for e in deleted] == ["order.deleted"]
