"""Live mode: simulated shoppers keep changing the storefront while the emulator runs.

Shoppers create carts, change quantities on editable orders, check out (shopping_cart/editable
-> paid -> processing -> completed), cancel now and then and delete abandoned carts. They act on
recent orders, as real traffic does; the merchant also purges abandoned carts and cancelled
orders of any age (so a deletion can hit a page a client read long ago). Every action goes
through the store's own mutation methods, so the same rules apply as to API calls. Actions
arrive as a Poisson process at `rate` a second.

`pause()` stops the shoppers and returns once no action is under way, so a test can compare a
client's copy with the store at rest; `resume()` lets them go on.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable

from alter_pipeline.emulator.errors import ApiError
from alter_pipeline.emulator.store import Store

# How far back (in orders) shoppers look for an order to act on.
RECENT_WINDOW = 500
# Orders the merchant may purge, whatever their age.
PURGEABLE = ("shopping_cart", "editable", "cancelled")
NEXT_STATUS = {"paid": "processing", "processing": "completed"}


class Shoppers:
    def __init__(self, store: Store, rate: float, seed: int) -> None:
        self.store = store
        self.rate = rate
        self.rng = random.Random(f"live:{seed}")
        self.actions: Counter[str] = Counter()
        # Held while an action runs; `pause` takes it to know none is under way.
        self._acting = threading.Lock()
        self._paused = False
        self._actions: list[tuple[str, int, Callable[[], bool]]] = [
            ("create_cart", 30, self.create_cart),
            ("change_quantity", 25, self.change_quantity),
            ("checkout", 20, self.checkout),
            ("advance", 15, self.advance),
            ("abandon", 7, self.abandon),
            ("cancel", 3, self.cancel),
            ("purge", 5, self.purge),
        ]

    def step(self) -> str:
        """Run one action drawn by weight; returns its name ('idle' when nothing fit)."""
        names, weights, actions = zip(*self._actions, strict=True)
        index = self.rng.choices(range(len(names)), weights)[0]
        try:
            done = actions[index]()
        except ApiError:  # e.g. a test deleted the order a moment ago
            done = False
        name = names[index] if done else "idle"
        self.actions[name] += 1
        return name

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.rng.expovariate(self.rate))
            with self._acting:
                if not self._paused:
                    self.step()

    def pause(self) -> None:
        """Stop acting; on return no action is under way (thread-safe)."""
        with self._acting:
            self._paused = True

    def resume(self) -> None:
        self._paused = False

    # ---- actions: each returns False when no order fits --------------------------------------

    def create_cart(self) -> bool:
        self.store.create_order(status="shopping_cart")
        return True

    def change_quantity(self) -> bool:
        order_id = self._recent(("shopping_cart", "editable"))
        if order_id is None:
            return False
        item = self.rng.choice(self.store.get_order(order_id)["productItems"])
        self.store.set_quantity(order_id, item["id"], self.rng.randint(1, 5))
        return True

    def checkout(self) -> bool:
        return self._move(("shopping_cart", "editable"), lambda _: "paid")

    def advance(self) -> bool:
        return self._move(tuple(NEXT_STATUS), NEXT_STATUS.__getitem__)

    def cancel(self) -> bool:
        return self._move(("paid",), lambda _: "cancelled")

    def abandon(self) -> bool:
        order_id = self._recent(("shopping_cart",))
        if order_id is None:
            return False
        self.store.delete_order(order_id)
        return True

    def purge(self) -> bool:
        """The merchant deletes an abandoned cart or a cancelled order of any age."""
        candidates = self.store.order_ids(PURGEABLE)
        if not candidates:
            return False
        self.store.delete_order(self.rng.choice(candidates))
        return True

    def _move(self, statuses: tuple[str, ...], target: Callable[[str], str]) -> bool:
        order_id = self._recent(statuses)
        if order_id is None:
            return False
        current = self.store.status_of(order_id)
        if current is None:
            return False
        self.store.set_status(order_id, target(current))
        return True

    def _recent(self, statuses: tuple[str, ...]) -> int | None:
        candidates = self.store.recent_order_ids(RECENT_WINDOW, statuses)
        return self.rng.choice(candidates) if candidates else None
