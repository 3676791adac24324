"""apply_inbox_events in plain Python: the safeties a run of event rules keeps."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from rules_helpers import PATCH_STATUS, client_for, rules, sync_lake
from starlette.responses import PlainTextResponse

from alter_pipeline.emulator.faults import Fault
from alter_pipeline.inbound.inbox import Inbox, Incoming
from alter_pipeline.rules.apply import BlastRadiusError
from alter_pipeline.rules.on_events import apply_inbox_events

RULES = """\
max_transitions_per_run: 2
rules:
  - id: paid-on-checkout
    on: {source: stripe, type: checkout.session.completed}
    order_id: data.object.metadata.alter_order_id
    when: {status: {in: [processing]}}
    then: {set_status: paid}
"""


class FailEveryPatch(Fault):
    """Every status PATCH answers 503, as a backend in maintenance would."""

    def __init__(self) -> None:
        super().__init__(1.0)

    async def before(self, request: Any, rng: Any) -> Any:
        if request.method == "PATCH":
            return PlainTextResponse("backend unavailable", 503)
        return None


def inbox_with_events(root: Path, order_ids: list[int]) -> Inbox:
    inbox = Inbox.for_root(root)
    events = [
        Incoming(
            "stripe",
            f"evt_{n}",
            "checkout.session.completed",
            json.dumps({"data": {"object": {"metadata": {"alter_order_id": order_id}}}}).encode(),
            time.time(),
        )
        for n, order_id in enumerate(order_ids)
    ]
    inbox.store(events)
    return inbox


def processing_orders(emulator: Any, count: int) -> list[int]:
    order_ids = emulator.store.order_ids(["shopping_cart"])[:count]
    for order_id in order_ids:
        emulator.store.set_status(order_id, "processing")
    return order_ids


def test_the_blast_radius_guard_stops_before_any_change_and_keeps_the_events(emulator, tmp_path):
    order_ids = processing_orders(emulator, 3)
    lake = sync_lake(emulator, tmp_path)
    with inbox_with_events(tmp_path, order_ids) as inbox, client_for(emulator) as client:
        with pytest.raises(BlastRadiusError, match="3 status changes planned, over the limit"):
            apply_inbox_events(client, lake, rules(RULES), inbox, run_id="r1", refresh=None)
        assert [e["state"] for e in inbox.events()] == ["pending"] * 3
    assert emulator.counters.count(PATCH_STATUS) == 0


def test_a_failed_patch_leaves_the_event_failed_for_a_later_retry(emulator_factory, tmp_path):
    emulator = emulator_factory(faults=[FailEveryPatch()])
    (order_id,) = processing_orders(emulator, 1)
    lake = sync_lake(emulator, tmp_path)
    with inbox_with_events(tmp_path, [order_id]) as inbox, client_for(emulator, 1) as client:
        report = apply_inbox_events(client, lake, rules(RULES), inbox, run_id="r1", refresh=None)
        (event,) = inbox.events()
        assert inbox.next_retry_at() is not None and inbox.next_retry_at() > time.time()
    assert (event["state"], event["order_id"]) == ("failed", order_id)
    assert event["detail"].startswith("ServerError")
    assert [r.outcome for r in report.rows] == ["failed"]
    assert emulator.store.status_of(order_id) == "processing"
