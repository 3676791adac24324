"""The loop end to end on the emulator: a signed inbound event -> inbox -> sensor tick ->
rules run -> PATCH -> `order.status_changed` in order_events; and its safeties."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from inbound_helpers import event_body, inbound_server, sign

from alter_pipeline.api import AlterClient, RetryPolicy
from alter_pipeline.assets.rules import build_status_transitions
from alter_pipeline.inbound.inbox import FAILED, MAX_ATTEMPTS, Inbox, Incoming
from alter_pipeline.jobs import apply_rules_job
from alter_pipeline.lake import Lake
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.sensors import build_inbound_sensor
from alter_pipeline.sync import run_sync

PATCH_STATUS = "PATCH /customer-orders/{id}/status"
RULES = """
rules:
  - id: paid-on-stripe-checkout
    on: {source: stripe, type: checkout.session.completed}
    order_id: data.object.metadata.alter_order_id
    when: {status: {in: [processing]}}
    then: {set_status: paid}
"""


@pytest.fixture
def synced(emulator: Any, tmp_path: Path) -> dict[str, Any]:
    """A synced lake in tmp_path, a rules file, and an order in `processing`."""
    order_id = emulator.store.order_ids(["shopping_cart"])[0]
    emulator.store.set_status(order_id, "processing")
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
    with AlterClient(emulator.base_url, emulator.key, emulator.token, retry=policy) as client:
        run_sync(client, Lake(tmp_path), now=emulator.store.now())
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return {"order_id": order_id, "rules": rules, "root": tmp_path}


def deliver(root: Path, event_id: str, order_id: int, times: int = 1) -> list[int]:
    body = event_body(event_id, order_id=order_id)
    with inbound_server(root) as server, __import__("httpx").Client(timeout=10) as http:
        return [
            http.post(
                server.url + "/hooks/stripe", content=body, headers=sign("stripe", body, event_id)
            ).status_code
            for _ in range(times)
        ]


def tick(root: Path, rules: Path, cursor: str | None = None) -> dg.SensorResult:
    sensor = build_inbound_sensor(rules_file=str(rules))
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"lake": LakeResource(data_dir=str(root))},
    )
    return sensor.evaluate_tick(context)


def run(emulator: Any, root: Path, run_config: dict[str, Any]) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions(
        assets=[build_status_transitions()],
        jobs=[apply_rules_job],
        resources={
            "alter_api": AlterApiResource(
                base_url=emulator.base_url, api_key=emulator.key, api_token=emulator.token
            ),
            "lake": LakeResource(data_dir=str(root)),
        },
    )
    return defs.resolve_job_def("apply_rules_job").execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


def tick_and_run(emulator: Any, synced: dict[str, Any], cursor: str | None = None):
    result = tick(synced["root"], synced["rules"], cursor)
    (request,) = result.run_requests
    return request, run(emulator, synced["root"], request.run_config)


def inbox_rows(root: Path) -> list[dict[str, Any]]:
    with Inbox.for_root(root) as inbox:
        return inbox.events()


def lake_rows(root: Path, table: str, where: str) -> list[tuple]:
    snapshot = Lake(root).current()
    assert snapshot is not None
    files = (snapshot.table_dir(table) / "**" / "*.parquet").as_posix()
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT * FROM read_parquet('{files}', hive_partitioning = true) WHERE {where}"
        ).fetchall()


def test_an_event_moves_its_order_and_the_change_becomes_an_order_event(emulator, synced):
    order_id, root = synced["order_id"], synced["root"]
    assert deliver(root, "evt_paid", order_id) == [200]
    request, result = tick_and_run(emulator, synced)
    assert request.run_key == "inbound:1-1"
    assert result.success
    assert emulator.counters.count(PATCH_STATUS) == 1
    assert order_id in emulator.store.order_ids(["paid"])
    changed = lake_rows(
        root, "order_events", f"order_id = {order_id} AND event_type = 'order.status_changed'"
    )
    assert len(changed) == 1
    (event,) = inbox_rows(root)
    assert (event["state"], event["order_id"], event["detail"]) == (
        "applied",
        order_id,
        "processing → paid",
    )
    (audit,) = lake_rows(root, "status_transitions", f"order_id = {order_id}")
    assert "stripe event evt_paid: processing → paid" in audit


def test_an_event_delivered_twice_and_replayed_applies_once(emulator, synced):
    order_id, root = synced["order_id"], synced["root"]
    assert deliver(root, "evt_twice", order_id, times=2) == [200, 200]
    request, first = tick_and_run(emulator, synced)
    assert first.success and len(inbox_rows(root)) == 1
    assert tick(root, synced["rules"], request.tags["alter/inbound_to"]).run_requests == []
    # The inbox forgets (a restore from backup) and the order is moved back by hand: the
    # ledger, keyed by the inbound event id, still never applies the event a second time.
    with sqlite3.connect(Inbox.for_root(root).path) as db:
        db.execute("UPDATE events SET state = 'pending'")
    emulator.store.set_status(order_id, "processing")
    again = run(emulator, root, request.run_config)
    assert again.success
    assert emulator.counters.count(PATCH_STATUS) == 1
    (event,) = inbox_rows(root)
    assert event["state"] == "skipped" and event["detail"].startswith("already applied by run")


def test_an_event_for_an_unknown_order_is_skipped_with_that_reason(emulator, synced):
    assert deliver(synced["root"], "evt_unknown", 987654) == [200]
    _, result = tick_and_run(emulator, synced)
    assert result.success
    assert emulator.counters.count(PATCH_STATUS) == 0
    (event,) = inbox_rows(synced["root"])
    assert (event["state"], event["detail"]) == ("skipped", "unknown order 987654")


def test_an_order_already_past_the_rule_is_skipped_as_a_move_not_allowed(emulator, synced):
    order_id = synced["order_id"]
    emulator.store.set_status(order_id, "paid")
    emulator.store.set_status(order_id, "completed")
    deliver(synced["root"], "evt_late", order_id)
    tick_and_run(emulator, synced)
    (event,) = inbox_rows(synced["root"])
    assert event["state"] == "skipped"
    assert (
        event["detail"]
        == "move not allowed: completed → paid (completed may move to nothing (final))"
    )


def test_an_event_no_rule_is_for_is_skipped_as_no_matching_rule(emulator, synced):
    body = event_body("evt_refund", order_id=synced["order_id"], kind="charge.refunded")
    with inbound_server(synced["root"]) as server, __import__("httpx").Client() as http:
        http.post(server.url + "/hooks/stripe", content=body, headers=sign("stripe", body, "x"))
    tick_and_run(emulator, synced)
    (event,) = inbox_rows(synced["root"])
    assert (event["state"], event["detail"]) == (
        "skipped",
        "no matching rule for stripe charge.refunded",
    )


def test_a_regular_rules_run_applies_the_pending_inbox_events_too(emulator, synced):
    deliver(synced["root"], "evt_cron", synced["order_id"])
    config = {"rules_file": str(synced["rules"])}  # what `alter-pipeline rules apply` runs
    result = run(emulator, synced["root"], {"ops": {"status_transitions": {"config": config}}})
    assert result.success
    assert synced["order_id"] in emulator.store.order_ids(["paid"])


# ---- retries ------------------------------------------------------------------------------


def stored_event(root: Path) -> Inbox:
    inbox = Inbox.for_root(root)
    inbox.store([Incoming("stripe", "evt_flaky", "checkout.session.completed", b"{}", 0.0)])
    return inbox


def test_a_failed_event_is_retried_with_backoff_and_dead_after_the_bound(tmp_path):
    with stored_event(tmp_path) as inbox:
        states = []
        for attempt in range(MAX_ATTEMPTS):
            (event,) = inbox.claim_due(f"run-{attempt}", now=time.time() + 10**6)
            states.append(inbox.resolve(event.sequence, f"run-{attempt}", FAILED, "503"))
            assert inbox.claim_due("too-early", now=time.time()) == []  # backoff holds it
        assert states == [FAILED] * (MAX_ATTEMPTS - 1) + ["dead"]
        assert inbox.claim_due("later", now=time.time() + 10**7) == []  # dead stays dead


def test_the_sensor_requests_a_run_when_a_retry_falls_due(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with stored_event(tmp_path) as inbox:
        (event,) = inbox.claim_due("run-1", now=time.time())
        inbox.resolve(event.sequence, "run-1", FAILED, "503", now=time.time() - 10**4)
    result = tick(tmp_path, rules, cursor="1")  # the event itself was already handed out
    (request,) = result.run_requests
    assert request.run_key.startswith("inbound:due:")


def test_the_sensor_asks_again_for_events_a_run_left_waiting(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with stored_event(tmp_path) as inbox:  # received long ago, handed out, still pending
        assert inbox.oldest_waiting(time.time()) == 1
    result = tick(tmp_path, rules, cursor="1")
    assert [r.run_key for r in result.run_requests] == ["inbound:waiting:1"]
    assert tick(tmp_path, rules, cursor=result.cursor).run_requests[0].run_key == (
        "inbound:waiting:1"  # the same key until a run moves past it: Dagster runs it once
    )
