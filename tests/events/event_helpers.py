"""Helpers of the event-bridge tests: random mutations, syncs and comparisons."""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alter_pipeline.api import AlterClient
from alter_pipeline.lake import Lake
from alter_pipeline.sync import IncrementalPolicy, run_sync
from alter_pipeline.warehouse import memory_connection

FINAL = ("completed", "cancelled")
EDITABLE = ("shopping_cart", "editable")


@dataclass
class Mutations:
    """What a random sequence of shopper and operator actions did, per order id."""

    created: set[int] = field(default_factory=set)
    deleted: set[int] = field(default_factory=set)
    status: dict[int, tuple[str, str]] = field(default_factory=dict)
    quantity: set[int] = field(default_factory=set)

    @property
    def touched(self) -> set[int]:
        return self.created | self.deleted | set(self.status) | self.quantity


def add_recent_carts(store: Any, count: int = 15) -> None:
    """Fresh carts, so that a small synthetic store has recently active open orders."""
    for _ in range(count):
        store.create_order()


def mutate(store: Any, rng: random.Random, count: int, candidates: list[int]) -> Mutations:
    """Apply `count` random creates, status changes, quantity changes and deletes."""
    done = Mutations()
    alive = list(candidates)
    for _ in range(count):
        action = rng.choice(("create", "status", "quantity", "delete"))
        if action == "create":
            done.created.add(store.create_order()["id"])
            continue
        if not alive:
            continue
        order_id = rng.choice(alive)
        status = store.status_of(order_id)
        if action == "delete":
            store.delete_order(order_id)
            alive.remove(order_id)
            done.deleted.add(order_id)
            done.status.pop(order_id, None)
            done.quantity.discard(order_id)
        elif action == "status":
            new = rng.choice(
                [s for s in ("editable", "paid", "processing", "completed") if s != status]
            )
            store.set_status(order_id, new)
            first = done.status.get(order_id, (status, new))[0]
            done.status[order_id] = (first, new)
        elif status in EDITABLE:
            item = rng.choice(store.get_order(order_id)["productItems"])
            store.set_quantity(order_id, item["id"], item["quantity"] % 9 + 1)
            done.quantity.add(order_id)
    return done


class Syncer:
    """Syncs one emulator into a lake, and full syncs into scratch lakes for comparison."""

    def __init__(self, emulator: Any, root: Path, policy: IncrementalPolicy):
        self.emulator = emulator
        self.client = AlterClient(emulator.base_url, emulator.key, emulator.token)
        self.root, self.lake_dir = root, root / "lake"
        self.policy = policy
        self.references = 0

    def sync(self, **kwargs: Any):
        lake = Lake(self.lake_dir)
        return run_sync(
            self.client, lake, now=self.emulator.store.now(), policy=self.policy, **kwargs
        )

    def rows(self, table: str, key: str, data_dir: Path | None = None) -> dict[int, tuple]:
        """Rows by key; is_seen_by_owner left out (the detail shape of re-reads lacks it)."""
        with memory_connection(data_dir or self.lake_dir) as con:
            names = [
                c[0]
                for c in con.execute(f"select * from {table} limit 0").description
                if c[0] != "is_seen_by_owner"
            ]
            rows = con.execute(f"select {', '.join(names)} from {table}").fetchall()
        index = names.index(key)
        return {row[index]: row for row in rows}

    def full_rows(self, table: str, key: str) -> dict[int, tuple]:
        """What a fresh full sync of the emulator's current state gives."""
        self.references += 1
        target = self.root / f"reference-{self.references}"
        run_sync(self.client, Lake(target), full=True, now=self.emulator.store.now())
        return self.rows(table, key, target)

    def close(self) -> None:
        self.client.close()


def recently_active(store: Any, days: int = 7) -> list[int]:
    """Open orders created or updated within `days` of the emulator's now."""
    cutoff = store.now() - timedelta(days=days)
    active = []
    for order in store.orders_list():
        if order["orderStatus"] in FINAL:
            continue
        stamps = [datetime.fromisoformat(order["createdAt"])]
        stamps += [
            datetime.fromisoformat(i["updatedAt"]).replace(tzinfo=UTC)
            for i in order["productItems"]
        ]
        if max(stamps) >= cutoff:
            active.append(order["id"])
    return active
