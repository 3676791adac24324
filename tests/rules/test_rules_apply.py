"""Applying rules against the emulator over loopback: re-read, idempotency, limits, failures."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from rules_helpers import (
    BATCH_READ,
    PATCH_STATUS,
    client_for,
    rules,
    sync_lake,
    write_snapshot,
)
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from alter_pipeline.api.errors import MissingScopeError
from alter_pipeline.emulator.faults import Fault, ServerErrorFault
from alter_pipeline.lake import Lake
from alter_pipeline.rules.apply import BlastRadiusError, apply_rules
from alter_pipeline.rules.ledger import Ledger
from alter_pipeline.sync import refresh_orders
from alter_pipeline.warehouse import memory_connection

STALE_CARTS = """\
max_transitions_per_run: 500
rules:
  - id: cancel-stale-carts
    when:
      status: {in: [shopping_cart, editable]}
      age: {gt: 30d}
      idle: {gt: 30d}
    then: {set_status: cancelled}
"""


def stale_cart_ids(emulator: Any, text: str = STALE_CARTS) -> list[int]:
    """What the rule should pick, computed from the emulator's own records (list shape)."""
    from alter_pipeline.rules.evaluate import OrderFacts, matches

    rule = rules(text).rules[0]
    now = emulator.store.now()
    return [
        raw["id"]
        for raw in emulator.store.orders_list()
        if matches(rule.when, OrderFacts.from_raw(raw), now)
    ]


def run(client, lake, text=STALE_CARTS, *, run_id="run-1", emulator=None, **options):
    now = options.pop("now", None) or (emulator.store.now() if emulator else None)
    options.setdefault("refresh", refresh_orders)  # what the Dagster asset passes
    return apply_rules(client, lake, rules(text), run_id=run_id, now=now, **options)


def audit_rows(data_dir) -> list[tuple]:
    with memory_connection(data_dir) as con:
        return con.execute(
            "SELECT order_id, rule_id, from_status, to_status, dry_run, outcome, run_id "
            "FROM status_transitions ORDER BY run_id, order_id"
        ).fetchall()


def test_matching_orders_are_moved_and_every_change_is_audited(emulator, client, tmp_path):
    lake = sync_lake(emulator, tmp_path)
    expected = stale_cart_ids(emulator)
    assert len(expected) >= 5  # the small store has stale carts to cancel
    report = run(client, lake, emulator=emulator)
    assert sorted(r.order_id for r in report.applied) == expected
    assert report.failed == [] and report.outcome("skipped") == []
    assert {emulator.store.status_of(i) for i in expected} == {"cancelled"}
    assert emulator.counters.count(PATCH_STATUS) == len(expected)
    rows = audit_rows(tmp_path)
    assert [r[0] for r in rows] == expected
    assert {(r[1], r[3], r[4], r[5], r[6]) for r in rows} == {
        ("cancel-stale-carts", "cancelled", False, "applied", "run-1")
    }


def test_orders_that_changed_after_the_snapshot_are_skipped(emulator, client, tmp_path):
    lake = sync_lake(emulator, tmp_path)
    first, second, third, *rest = stale_cart_ids(emulator)
    emulator.store.set_status(first, "processing")  # the customer checked out meanwhile
    touched = emulator.store.get_order(second)["productItems"][0]["id"]
    emulator.store.set_quantity(second, touched, 3, force=True)  # no longer idle
    emulator.store.set_status(third, "cancelled")  # someone cancelled it by hand
    report = run(client, lake, emulator=emulator)
    skipped = {r.order_id: r.detail for r in report.outcome("skipped")}
    assert skipped[first] == "status changed since the snapshot: now processing"
    assert skipped[second].startswith("no longer matches: idle > 30d (actual: ")
    assert skipped[third] == "already applied: the order is already cancelled"
    assert sorted(r.order_id for r in report.applied) == rest
    assert emulator.store.status_of(first) == "processing"
    assert emulator.counters.count(PATCH_STATUS) == len(rest)


def test_fields_the_batch_read_lacks_keep_their_synced_value(emulator, client, tmp_path):
    # The batch endpoint's detail shape has no isSeenByOwner; the synced list shape has it.
    lake = sync_lake(emulator, tmp_path)
    text = STALE_CARTS.replace("      idle: {gt: 30d}\n", "      is_seen_by_owner: false\n")
    expected = stale_cart_ids(emulator, text)
    assert expected and stale_cart_ids(emulator, text.replace("false", "true"))  # both kinds
    report = run(client, lake, text, emulator=emulator)
    assert sorted(r.order_id for r in report.applied) == expected
    assert report.outcome("skipped") == []


def test_changed_orders_are_refreshed_so_status_change_events_follow(emulator, client, tmp_path):
    lake = sync_lake(emulator, tmp_path)
    report = run(client, lake, emulator=emulator)
    changed = sorted(r.order_id for r in report.applied)
    assert report.refresh == f"refreshed {len(changed)} orders"
    with memory_connection(tmp_path) as con:
        events = con.execute(
            "SELECT order_id FROM order_events WHERE event_type = 'order.status_changed' "
            "ORDER BY order_id"
        ).fetchall()
        statuses = con.execute(
            "SELECT DISTINCT status FROM orders WHERE order_id IN (SELECT unnest($ids))",
            {"ids": changed},
        ).fetchall()
    assert [e[0] for e in events] == changed
    assert statuses == [("cancelled",)]
    assert run(client, lake, emulator=emulator, run_id="run-2").rows == []  # nothing left


def test_a_repeated_run_over_the_same_data_applies_nothing_twice(emulator, client, tmp_path):
    # Without the refresh the lake still shows the old statuses, as for a step retried after
    # its PATCHes went through: the ledger and the re-read must stop every second PATCH.
    lake = sync_lake(emulator, tmp_path)
    first = run(client, lake, emulator=emulator, refresh=None)
    patches = emulator.counters.count(PATCH_STATUS)
    again = run(client, lake, emulator=emulator, refresh=None)  # the same run, retried
    other = run(client, lake, emulator=emulator, run_id="run-2", refresh=None)
    assert patches == len(first.applied) > 0
    assert emulator.counters.count(PATCH_STATUS) == patches
    assert again.applied == [] and other.applied == []
    assert {r.detail for r in again.outcome("skipped")} == {"already applied by run run-1"}
    assert {r.detail for r in other.outcome("skipped")} == {"already applied by run run-1"}


def test_an_order_the_re_read_shows_already_moved_is_skipped_as_applied(emulator, client, tmp_path):
    # A snapshot written from data older than the change (new files, so new ledger keys):
    # the ledger cannot tell, the re-read before the PATCH does.
    before = emulator.store.orders_list()
    lake = sync_lake(emulator, tmp_path)
    first = run(client, lake, emulator=emulator, refresh=None)
    write_snapshot(lake, before)
    patches = emulator.counters.count(PATCH_STATUS)
    again = run(client, lake, emulator=emulator, run_id="run-2")
    assert emulator.counters.count(PATCH_STATUS) == patches
    skipped = {r.order_id: r.detail for r in again.outcome("skipped")}
    assert sorted(skipped) == sorted(r.order_id for r in first.applied)
    assert set(skipped.values()) == {"already applied: the order is already cancelled"}


def test_racing_runs_apply_each_transition_once(emulator, tmp_path):
    sync_lake(emulator, tmp_path)
    expected = stale_cart_ids(emulator)
    reports: dict[str, Any] = {}

    def race(run_id: str) -> None:
        with client_for(emulator) as client:
            lake = Lake(tmp_path)  # all racers read the same snapshot: no refresh in between
            reports[run_id] = run(client, lake, emulator=emulator, run_id=run_id, refresh=None)

    threads = [threading.Thread(target=race, args=(f"racer-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    applied = [r.order_id for report in reports.values() for r in report.applied]
    assert sorted(applied) == expected == sorted(set(applied))
    assert emulator.counters.count(PATCH_STATUS) == len(applied)
    assert all(not report.failed for report in reports.values())
    assert len(audit_rows(tmp_path)) == 3 * len(applied)  # every run audited every order


def test_the_blast_radius_guard_stops_the_run_before_any_change(emulator, client, tmp_path):
    lake = sync_lake(emulator, tmp_path)
    limited = STALE_CARTS.replace("max_transitions_per_run: 500", "max_transitions_per_run: 3")
    with pytest.raises(BlastRadiusError) as stopped:
        run(client, lake, limited, emulator=emulator)
    count = len(stale_cart_ids(emulator))
    assert f"{count} status changes planned, over the limit of 3 per run" in str(stopped.value)
    assert f"--max-transitions {count}" in str(stopped.value)
    assert emulator.counters.count(PATCH_STATUS) == 0
    assert emulator.counters.count(BATCH_READ) == 0
    raised = run(client, lake, limited, emulator=emulator, max_transitions=count)
    assert len(raised.applied) == count


def test_a_rule_over_its_max_per_run_stops_the_run(emulator, client, tmp_path):
    lake = sync_lake(emulator, tmp_path)
    text = STALE_CARTS.replace("    when:", "    max_per_run: 2\n    when:", 1)
    with pytest.raises(BlastRadiusError, match="over its max_per_run of 2"):
        run(client, lake, text, emulator=emulator)
    assert emulator.counters.count(PATCH_STATUS) == 0


def test_a_deleted_order_is_skipped_and_the_others_are_changed(emulator, client, tmp_path):
    lake = sync_lake(emulator, tmp_path)
    gone, *rest = stale_cart_ids(emulator)
    emulator.store.delete_order(gone)
    report = run(client, lake, emulator=emulator)
    assert report.failed == []  # a shopper deleting a cart is no failure of the run
    assert [(r.order_id, r.detail) for r in report.outcome("skipped")] == [
        (gone, "order no longer exists (the batch read did not return it)")
    ]
    assert sorted(r.order_id for r in report.applied) == rest


class FailPatchesOf(Fault):
    """Every PATCH of the given orders answers 503, as a broken backend shard would."""

    def __init__(self, order_ids: set[int]) -> None:
        super().__init__(1.0)
        self.order_ids = order_ids

    async def before(self, request, rng):
        parts = request.url.path.rstrip("/").split("/")
        is_status_patch = request.method == "PATCH" and parts[-1] == "status"
        if is_status_patch and int(parts[-2]) in self.order_ids:
            return PlainTextResponse("backend unavailable", 503)
        return None


def test_server_faults_fail_their_orders_only_and_the_run_lists_them(emulator_factory, tmp_path):
    probe = emulator_factory()
    victims = set(stale_cart_ids(probe)[1::3])
    emulator = emulator_factory(faults=[FailPatchesOf(victims)])
    lake = sync_lake(emulator, tmp_path)
    with client_for(emulator, attempts=2) as client:
        report = run(client, lake, emulator=emulator)
    assert {r.order_id for r in report.failed} == victims
    assert all(r.detail.startswith("ServerError: ") for r in report.failed)
    assert {emulator.store.status_of(i) for i in victims} != {"cancelled"}
    assert len(report.applied) == len(stale_cart_ids(probe)) - len(victims)
    with Ledger.for_data_dir(tmp_path) as ledger:  # failed claims may be retried later
        assert {e.key.order_id for e in ledger.entries() if e.state == "failed"} == victims


class FailSomePatches(ServerErrorFault):
    """A share of the status PATCHes answers 503 (before or after nothing changed)."""

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if request.method != "PATCH":
            return None
        return await super().before(request, rng)


def test_random_server_faults_never_leave_an_order_half_recorded(emulator_factory, tmp_path):
    emulator = emulator_factory(seed=11)
    lake = sync_lake(emulator, tmp_path)
    emulator.set_faults([FailSomePatches(0.4)])
    with client_for(emulator, attempts=1) as client:
        report = run(client, lake, emulator=emulator)  # failed PATCHes never abort the run
    assert report.failed and report.applied, "the faults should fail some orders, not all"
    for row in report.rows:
        status = emulator.store.status_of(row.order_id)
        assert (status == "cancelled") == (row.outcome == "applied"), row


def test_a_dry_run_changes_nothing_on_the_api(emulator, client, tmp_path):
    lake = sync_lake(emulator, tmp_path)
    before = {o["id"]: o["orderStatus"] for o in emulator.store.orders_list()}
    report = run(client, lake, emulator=emulator, dry_run=True)
    assert emulator.counters.count(PATCH_STATUS) == 0
    assert {o["id"]: o["orderStatus"] for o in emulator.store.orders_list()} == before
    would = report.outcome("applied", dry_run=True)
    assert sorted(r.order_id for r in would) == stale_cart_ids(emulator)
    assert all(r.detail.startswith("dry run: would move ") for r in would)
    assert {r[4] for r in audit_rows(tmp_path)} == {True}
    with Ledger.for_data_dir(tmp_path) as ledger:
        assert ledger.entries() == []  # a later live run is not blocked


def test_a_dry_run_rule_only_records_while_live_rules_apply(emulator, client, tmp_path):
    lake = sync_lake(emulator, tmp_path)
    text = (
        STALE_CARTS
        + """\
  - id: checkout-paid-looking
    dry_run: true
    when: {status: processing}
    then: {set_status: paid}
"""
    )
    stale, processing = stale_cart_ids(emulator), emulator.store.order_ids(["processing"])
    report = run(client, lake, text, emulator=emulator)
    assert processing  # the store has some to try the dry-run rule on
    dry = report.outcome("applied", dry_run=True)
    assert sorted(r.order_id for r in dry) == processing
    assert sorted(r.order_id for r in report.applied) == stale
    assert set(emulator.store.order_ids(["processing"])) == set(processing)


def test_missing_write_scope_is_reported_before_anything_starts(emulator_factory, tmp_path):
    emulator = emulator_factory(scopes=("orders:read",))
    lake = sync_lake(emulator, tmp_path)
    with client_for(emulator) as client:
        with pytest.raises(MissingScopeError, match="lacks the orders:write scope"):
            run(client, lake, emulator=emulator)
        assert emulator.counters.count() == 1  # the auth check, nothing else
        dry = run(client, lake, emulator=emulator, dry_run=True)  # reading is enough for this
    assert len(dry.outcome("applied", dry_run=True)) == len(stale_cart_ids(emulator))


CONFLICTING = """\
max_transitions_per_run: 500
rules:
  - id: cancel-stale-carts
    when: {status: {in: [shopping_cart, editable]}, age: {gt: 30d}}
    then: {set_status: cancelled}
  - id: send-to-checkout
    when: {status: {in: [shopping_cart, editable]}, age: {gt: 30d}}
    then: {set_status: processing}
"""


@pytest.mark.parametrize(
    ("priorities", "winner", "loser"),
    [
        ((0, 0), "cancel-stale-carts", "send-to-checkout"),  # tie: earlier in the file
        ((0, 5), "send-to-checkout", "cancel-stale-carts"),  # higher priority first
    ],
)
def test_conflicting_rules_resolve_by_priority_then_file_order(
    emulator, client, tmp_path, priorities, winner, loser
):
    text = CONFLICTING
    names = ("cancel-stale-carts", "send-to-checkout")
    for rule_id, priority in zip(names, priorities, strict=True):
        text = text.replace(f"id: {rule_id}\n", f"id: {rule_id}\n    priority: {priority}\n")
    lake = sync_lake(emulator, tmp_path)
    report = run(client, lake, text, emulator=emulator)
    assert {r.rule_id for r in report.applied} == {winner}
    lost = report.outcome("skipped")
    assert {r.rule_id for r in lost} == {loser}
    assert {r.order_id for r in lost} == {r.order_id for r in report.applied}
    assert all(r.detail.startswith(f"conflict: rule {winner} (priority ") for r in lost)
    assert len(report.plan.conflicts) == len(lost)


def test_a_rule_never_undoes_another_rules_change(emulator, client, tmp_path):
    there = """\
    rules:
      - id: reopen-carts
        when: {status: shopping_cart, age: {gt: 30d}}
        then: {set_status: editable}
    """
    back = """\
    rules:
      - id: close-editables
        when: {status: editable, age: {gt: 30d}}
        then: {set_status: shopping_cart}
    """
    import textwrap

    first = run(client, sync_lake(emulator, tmp_path), textwrap.dedent(there), emulator=emulator)
    moved = {r.order_id for r in first.applied}
    assert moved
    second = run(
        client,
        sync_lake(emulator, tmp_path),  # a later sync sees them editable
        textwrap.dedent(back),
        emulator=emulator,
        run_id="run-2",
    )
    fights = {r.order_id: r.detail for r in second.outcome("skipped")}
    assert set(fights) == moved
    undo = "would undo rule reopen-carts, which moved it"
    assert all(detail.startswith(undo) for detail in fights.values())
    assert {emulator.store.status_of(i) for i in moved} == {"editable"}
