"""Helpers of the reliability tests: a shop (emulator, lake, rules, webhook receiver), the flow
every fault case runs, and the comparisons of its result with the emulator's own state.

A unique module name: pytest puts each test folder on sys.path, and other folders have their
own helpers modules.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml
from starlette.requests import Request
from starlette.responses import Response

from alter_pipeline.api import AlterClient, RetryPolicy, Timeouts
from alter_pipeline.config import Settings
from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.emulator.faults import Fault
from alter_pipeline.lake import Lake
from alter_pipeline.lake.flatten import flatten_orders, flatten_products
from alter_pipeline.rules import ledger, parse_rules
from alter_pipeline.rules.apply import apply_rules
from alter_pipeline.rules.compile import find_matches
from alter_pipeline.rules.data import snapshot_connection
from alter_pipeline.sync import refresh_orders, run_sync
from alter_pipeline.webhooks import deliver_due, ingest, pending_work
from alter_pipeline.webhooks.receiver import Receiver

SECRET_ENV = "RELIABILITY_WEBHOOK_SECRET"
READ_TIMEOUT_S = 0.3
CLIENT_ATTEMPTS = 8  # the fast client's retry bound
WEBHOOK_TIMEOUT_S = 0.3
OPEN = ("shopping_cart", "editable", "paid", "processing")
EDITABLE = ("shopping_cart", "editable")

RULES = """
max_transitions_per_run: 1000
rules:
  - id: cancel-stale-carts
    priority: 10
    when:
      status: {in: [shopping_cart, editable]}
      age: {gt: 30d}
    then:
      set_status: cancelled
  - id: complete-old-paid
    when:
      status: paid
      age: {gt: 20d}
    then:
      set_status: completed
"""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def fast_client(
    emulator: RunningEmulator, *, attempts: int = CLIENT_ATTEMPTS, seed: int = 1
) -> AlterClient:
    """Millisecond backoff and a short read timeout, so faults cost little time."""
    policy = RetryPolicy(
        max_attempts=attempts,
        base_delay=0.005,
        max_delay=0.02,
        deadline=20.0,
        rng=random.Random(seed),
    )
    timeouts = Timeouts(connect=2.0, read=READ_TIMEOUT_S)
    return AlterClient(
        emulator.base_url, emulator.key, emulator.token, timeouts=timeouts, retry=policy
    )


class TransitionLog(Fault):
    """Not a fault: records every status change the emulator's endpoint actually made, whatever
    the client saw. Put it first in the chain, so it sees the endpoint's own answer."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.moves: list[tuple[int, str, str]] = []

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if request.method == "PATCH" and request.url.path.endswith("/status"):
            order_id = int(request.path_params["id"])
            request.scope["alter.status_before"] = request.app.state.runtime.store.status_of(
                order_id
            )
        return None

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        old = request.scope.get("alter.status_before")
        if old is not None and response.status_code == 200:
            order_id = int(request.path_params["id"])
            new = request.app.state.runtime.store.status_of(order_id)
            if new != old:
                self.moves.append((order_id, old, new))
        return response


# ---- the emulator's own state ----------------------------------------------------------------


def recently_active(store: Any, days: int = 7) -> list[int]:
    """Open orders created, or with an item updated, within `days` of the emulator's now."""
    cutoff = store.now() - timedelta(days=days)
    found = []
    for order in store.orders_list():
        if order["orderStatus"] not in OPEN:
            continue
        stamps = [datetime.fromisoformat(order["createdAt"])]
        stamps += [
            datetime.fromisoformat(i["updatedAt"]).replace(tzinfo=UTC)
            for i in order["productItems"]
        ]
        if max(stamps) >= cutoff:
            found.append(order["id"])
    return found


def mutate(store: Any, rng: random.Random, avoid: Iterable[int] = ()) -> None:
    """What shoppers and the merchant do between two syncs, on recently active orders (the
    incremental sync re-reads those): create, change status, change quantity, delete; and,
    behind the re-reads, an old final order deleted and another one's status changed (the
    incremental sync's self-check finds those by the API's totals)."""
    for _ in range(6):
        store.create_order()
    final = [i for i in store.order_ids(["completed"]) if i not in set(avoid)]
    store.delete_order(final[0])
    store.set_status(final[1], "cancelled")
    candidates = [i for i in recently_active(store) if i not in set(avoid)]
    rng.shuffle(candidates)
    for order_id in candidates[:3]:
        store.delete_order(order_id)
    for order_id in candidates[3:7]:
        current = store.status_of(order_id)
        store.set_status(order_id, rng.choice([s for s in OPEN if s != current]))
    for order_id in candidates[7:12]:
        if store.status_of(order_id) in EDITABLE:
            item = rng.choice(store.get_order(order_id)["productItems"])
            store.set_quantity(order_id, item["id"], item["quantity"] % 9 + 1)


def _keyed(
    rows: list[dict[str, Any]], key: str, storefront_id: int | None = None
) -> dict[Any, dict[str, Any]]:
    # is_seen_by_owner exists only in the list shape: re-read orders keep the last listed one.
    # Flattened API rows lack storefront_id (the lake's writer adds it): expected rows get the
    # store's, so the comparison also proves every lake row names its storefront.
    stamp = {} if storefront_id is None else {"storefront_id": storefront_id}
    return {
        row[key]: stamp | {k: v for k, v in row.items() if k != "is_seen_by_owner"} for row in rows
    }


def store_tables(store: Any, leave_out: Iterable[int] = ()) -> dict[str, dict[Any, dict]]:
    """What the main tables must hold: the store's orders (list shape), items and products."""
    skip = set(leave_out)
    flat = flatten_orders(o for o in store.orders_list() if o["id"] not in skip)
    assert not flat.rejected
    storefront = store.config.storefront_id
    products = flatten_products(store.products()).products.to_pylist()
    return {
        "orders": _keyed(flat.orders.to_pylist(), "order_id", storefront),
        "order_items": _keyed(flat.items.to_pylist(), "order_item_id", storefront),
        "products": _keyed(products, "product_id", storefront),
    }


def lake_tables(lake: Lake) -> dict[str, dict[Any, dict]]:
    snapshot = lake.current()
    assert snapshot is not None
    keys = {"orders": "order_id", "order_items": "order_item_id", "products": "product_id"}
    return {
        table: _keyed(pq.read_table(snapshot.table_dir(table)).to_pylist(), key)
        for table, key in keys.items()
    }


def table_differences(
    expected: dict[str, dict], actual: dict[str, dict], ignore: Iterable[int] = ()
) -> list[str]:
    """How `actual` differs from `expected`, leaving out the orders `ignore` names (and their
    items) on both sides: orders a phase is not promised to have seen."""
    skip = set(ignore)
    problems = []
    for table, rows in expected.items():
        rows, got = _without(table, rows, skip), _without(table, actual[table], skip)
        missing, extra = rows.keys() - got.keys(), got.keys() - rows.keys()
        changed = [k for k in rows.keys() & got.keys() if rows[k] != got[k]]
        for label, ids in (("missing", missing), ("unexpected", extra), ("differ", changed)):
            if ids:
                problems.append(f"{table}: {len(ids)} rows {label}: {sorted(ids)[:10]}")
    return problems


def _without(table: str, rows: dict[Any, dict], skip: set[int]) -> dict[Any, dict]:
    if not skip or table not in ("orders", "order_items"):
        return rows
    return {k: row for k, row in rows.items() if row["order_id"] not in skip}


# ---- events and deliveries -------------------------------------------------------------------


def lake_events(lake: Lake) -> list[dict[str, Any]]:
    snapshot = lake.current()
    if snapshot is None or not snapshot.has_table("order_events"):
        return []
    table = pq.read_table(snapshot.table_dir("order_events"), partitioning=None)
    return sorted(table.to_pylist(), key=lambda e: e["sequence"])


def _projection(state: dict[str, Any] | None) -> tuple | None:
    """What events report on: the status and each item's quantity."""
    if state is None:
        return None
    items = sorted((i["order_item_id"], i["quantity"]) for i in state["items"])
    return (state["order"]["status"], tuple(items))


def event_problems(lake: Lake, *, from_nothing: bool = True) -> list[str]:
    """Every order's events form one unbroken chain of states (each change starts where the
    last one ended) that ends in the order's row in the table; ids and sequences are unique.
    With `from_nothing` (the first sync emitted `order.created` for every order), each chain
    starts from no order and every order in the table has events."""
    events = lake_events(lake)
    problems = []
    ids = [e["event_id"] for e in events]
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids))} duplicate event ids")
    sequences = [e["sequence"] for e in events]
    if sequences != list(range(1, len(events) + 1)):
        problems.append("event sequences are not 1..n without gaps")
    chains: dict[int, list[tuple]] = defaultdict(list)
    for event in events:
        if event["order_id"] is None:
            continue
        payload = json.loads(event["payload"])
        change = (_projection(payload["before"]), _projection(payload["after"]))
        chain = chains[event["order_id"]]
        if not chain or chain[-1] != change:  # one change may give several event types
            chain.append(change)
    current = _current_projections(lake)
    for order_id, chain in chains.items():
        if from_nothing and chain[0][0] is not None:
            problems.append(f"order {order_id}: first event does not start from nothing")
        for (_, end), (start, _) in itertools.pairwise(chain):
            if end != start:
                problems.append(f"order {order_id}: a change was lost between {end} and {start}")
        if chain[-1][1] != current.get(order_id):
            problems.append(f"order {order_id}: last event ends in {chain[-1][1]}, table has "
                            f"{current.get(order_id)}")  # fmt: skip
    for order_id in current.keys() - chains.keys() if from_nothing else ():
        problems.append(f"order {order_id} is in the table but has no event")
    return problems


def _current_projections(lake: Lake) -> dict[int, tuple]:
    snapshot = lake.current()
    assert snapshot is not None
    orders = pq.read_table(snapshot.table_dir("orders"), columns=["order_id", "status"])
    items = pq.read_table(
        snapshot.table_dir("order_items"), columns=["order_id", "order_item_id", "quantity"]
    )
    by_order: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for item in items.to_pylist():
        by_order[item["order_id"]].append((item["order_item_id"], item["quantity"]))
    return {
        o["order_id"]: (o["status"], tuple(sorted(by_order[o["order_id"]])))
        for o in orders.to_pylist()
    }


def delivery_problems(lake: Lake, receiver: Receiver) -> list[str]:
    """Every event reached the receiver (verified, accepted), always with the same body, and
    each order's events were first accepted in sequence order."""
    events = {e["event_id"]: e for e in lake_events(lake)}
    accepted = receiver.accepted()
    first: dict[str, int] = {}
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for position, delivery in enumerate(accepted):
        first.setdefault(delivery.webhook_id, position)
        bodies[delivery.webhook_id].add(delivery.body)
    problems = []
    lost = events.keys() - first.keys()
    if lost:
        problems.append(f"{len(lost)} events never delivered, e.g. {sorted(lost)[:3]}")
    if first.keys() - events.keys():
        problems.append("deliveries of events the lake does not have")
    if any(len(b) > 1 for b in bodies.values()):
        problems.append("an event was delivered with different bodies")
    if receiver.rejected:
        problems.append(f"receiver rejected signatures: {receiver.rejected[:3]}")
    by_entity: dict[Any, list[tuple[int, int]]] = defaultdict(list)
    for event_id, position in first.items():
        event = events.get(event_id)
        if event is not None:
            entity = event["order_id"] or f"product {event['product_id']}"
            by_entity[entity].append((position, event["sequence"]))
    for entity, seen in by_entity.items():
        order = [sequence for _, sequence in sorted(seen)]
        if order != sorted(order):
            problems.append(f"{entity}: events accepted out of order {order}")
    return problems


# ---- secrets ---------------------------------------------------------------------------------


def needles(*values: str) -> dict[str, bytes]:
    """What must never show: each secret, and a webhook secret's base64 body on its own."""
    found = {}
    for value in values:
        found[value] = value.encode()
        if value.startswith("whsec_"):
            found[value + " (body)"] = value.removeprefix("whsec_").encode()
    return found


def leaks_in_files(roots: Iterable[Path], secret: dict[str, bytes]) -> list[str]:
    hits, seen = [], set()
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            inode = path.stat().st_ino  # snapshots hard-link the tables they carry over
            if inode in seen:
                continue
            seen.add(inode)
            data = path.read_bytes()
            if path.suffix == ".parquet":  # compressed: search the decoded values too
                data += str(pq.read_table(path).to_pylist()).encode()
            hits += [f"{path}: {name}" for name, needle in secret.items() if needle in data]
    return hits


def leaks_in_text(texts: Iterable[str], secret: dict[str, bytes]) -> list[str]:
    joined = "\n".join(texts).encode()
    return [name for name, needle in secret.items() if needle in joined]


# ---- the shop and its flow -------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    attempts: list[str] = field(default_factory=list)  # "" for success, else the error

    @property
    def failures(self) -> list[str]:
        return [a for a in self.attempts if a]


class Shop:
    """One storefront's pipeline: lake, rules ledger, webhook outbox and receiver, against one
    emulator, every call through a fast-retrying client."""

    def __init__(self, emulator: RunningEmulator, root: Path, receiver: Receiver) -> None:
        self.emulator = emulator
        self.data_dir = root / "data"
        self.lake = Lake(self.data_dir)
        self.receiver = receiver
        self.client = fast_client(emulator)
        self.ruleset = parse_rules(textwrap.dedent(RULES))
        webhooks_file = root / "webhooks.yaml"
        endpoint = {"id": "shop", "url": receiver.url + "/hooks", "events": ["*"],
                    "secret_env": SECRET_ENV, "timeout_s": WEBHOOK_TIMEOUT_S}  # fmt: skip
        webhooks_file.write_text(yaml.safe_dump({"endpoints": [endpoint]}), "utf-8")
        self.settings = Settings(data_dir=self.data_dir, webhooks_file=webhooks_file)
        self.phases: list[Phase] = []
        self.runs = 0

    def close(self) -> None:
        self.client.close()

    # -- the work, one call each --

    def sync(self, *, full: bool = False, emit_initial: bool = False) -> None:
        run_sync(self.client, self.lake, full=full, emit_initial=emit_initial, now=self.now())

    def apply_rules(self) -> None:
        self.runs += 1
        with ledger.Ledger.for_data_dir(self.data_dir) as book:
            report = apply_rules(
                self.client, self.lake, self.ruleset, run_id=f"run-{self.runs}",
                now=self.now(), book=book, refresh=refresh_orders,
            )  # fmt: skip
        if report.failed:
            raise RuntimeError(report.failure_message())

    def deliver(self) -> None:
        """Ingest and send until nothing is due, stepping a clock through the retry schedule
        (no sleeping): as the sensor would request runs when retries fall due."""
        clock = datetime.now(UTC)
        for _ in range(30):
            ingest(self.settings)
            deliver_due(self.settings, now=clock)
            work = pending_work(self.settings)
            if work.next_due_at is None and not work.events_waiting:
                return
            clock = max(clock, work.next_due_at or clock) + timedelta(seconds=1)
        raise AssertionError("deliveries still pending after 30 rounds")

    def now(self) -> datetime:
        return self.emulator.store.now()

    # -- running a phase under faults --

    def phase(self, name: str, work: Callable[[], None], faults: list[Fault], tries: int = 2):
        """Run `work` with the faults on, at most `tries` times (a failed scheduled run is
        followed by the next); if it still fails, once more with the faults off (the operator
        fixed the cause). A failed attempt must leave the current snapshot as it was."""
        phase = Phase(name)
        self.phases.append(phase)
        for attempt in range(tries + 1):
            if attempt == tries:
                self.emulator.set_faults(faults[:1])  # the transition log stays
            before = self._snapshot_id()
            try:
                work()
            except Exception as error:
                phase.attempts.append(f"{type(error).__name__}: {error}")
                self._assert_untouched(before, name)
                continue
            finally:
                self.emulator.set_faults(faults)
            phase.attempts.append("")
            return
        raise AssertionError(f"{name} failed even without faults: {phase.attempts[-1]}")

    def _snapshot_id(self) -> str | None:
        current = self.lake.current()
        return current.snapshot_id if current else None

    def _assert_untouched(self, before: str | None, name: str) -> None:
        if name.startswith(("full", "incremental", "reconcile")):
            assert self._snapshot_id() == before, f"{name} failed but changed the snapshot"
        leftovers = list(self.lake.snapshots_dir.glob(".tmp-*"))
        assert not leftovers, f"{name} left {leftovers}"

    def run_flow(
        self,
        faults: list[Fault],
        mutation_seed: int,
        avoid: Iterable[int] = (),
        after_phase: Callable[[str], None] = lambda name: None,
    ) -> None:
        """Full sync, changes, incremental sync, rules, deliveries, reconcile, deliveries;
        `after_phase(name)` runs after each phase (with the faults off), to check what that
        phase promises."""
        self.emulator.set_faults(faults)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("full sync", lambda: self.sync(full=True, emit_initial=True)),
            ("incremental sync", self.sync),
            ("rules", self.apply_rules),
            ("webhooks", self.deliver),
            ("reconcile", lambda: self.sync(full=True)),
            ("webhooks again", self.deliver),
        ]
        for name, work in steps:
            if name == "incremental sync":
                mutate(self.emulator.store, random.Random(mutation_seed), avoid)
            self.phase(name, work, faults)
            self.emulator.set_faults(faults[:1])  # the transition log stays
            after_phase(name)
            self.emulator.set_faults(faults)
        self.emulator.set_faults(faults[:1])

    def rules_left_undone(self) -> dict[str, list[tuple[int, str]]]:
        """Orders the live rules still match on the final snapshot (should be none)."""
        with snapshot_connection(self.lake.current()) as con:
            matches = find_matches(con, self.ruleset.enabled, self.now())
        return {rule: found for rule, found in matches.items() if found}
