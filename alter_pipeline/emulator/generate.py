"""Synthetic order history: `count` orders over the year before the reference 'now'.

Fast enough for 100,000 orders in a couple of seconds: per-order draws that do not depend on
each other (product, item count, creation time) are made in bulk with `Random.choices(k=...)`,
and the loop only assembles slotted records. Nothing is rendered here; JSON is built lazily.
"""

from __future__ import annotations

import random
from bisect import bisect
from itertools import accumulate

from alter_pipeline.contract import ORDER_STATUSES
from alter_pipeline.emulator.catalog import DAY_MS, Catalog
from alter_pipeline.emulator.model import Item, Order, Product

YEAR_MS = 365 * DAY_MS
EDIT_WINDOW_US = 3_600_000_000
# Items per order: 1..8, mean ~3.1 (fewer when a product has fewer variants).
ITEM_COUNTS = range(1, 9)
ITEM_COUNT_WEIGHTS = (25, 22, 17, 12, 9, 7, 5, 3)
QUANTITIES = (1, 2, 3, 4, 5, 10, 20, 50, 100)
QUANTITY_WEIGHTS = (55, 18, 8, 5, 4, 4, 3, 2, 1)
# Status mix by age (shopping_cart, editable, processing, paid, completed, cancelled): young
# orders are still in flight; old ones are fulfilled, cancelled or abandoned carts.
STATUS_WEIGHTS_BY_AGE = (
    (3 * DAY_MS, (35, 15, 15, 20, 5, 10)),
    (30 * DAY_MS, (20, 8, 12, 10, 40, 10)),
    (2**62, (14, 4, 1, 1, 70, 10)),
)
THEMES = (
    "Wieczór panieński Zosi", "Drużyna Łódź 2026", "Urodziny Małgosi", "Team Kraków",
    "Wesele Ani i Tomka", "Klub Biegacza Gdańsk", "Święta z rodziną", "Prezent dla taty",
    "Logo firmy Żuraw", "Szkoła Podstawowa nr 5", "Summer Camp", "My design", "Gift for Mum",
    "Zjazd absolwentów", "Pszczółka Maja fan club",
)  # fmt: skip
FIRST_ORDER_ID = 1
FIRST_ITEM_ID = 1


class IdSequence:
    """Increasing ids with occasional gaps, like an auto-increment column after deletions."""

    def __init__(self, first: int, rng: random.Random) -> None:
        self.next = first
        self._rng = rng

    def take(self) -> int:
        value = self.next
        self.next += 1 if self._rng.random() >= 0.03 else self._rng.randrange(2, 5)
        return value

    def take_many(self, count: int) -> list[int]:
        """`count` ids at once (the bulk path of generation)."""
        rand = self._rng.random
        steps = [1 if u >= 0.03 else 2 + int(u * 100) for u in (rand() for _ in range(count))]
        ids = [self.next + offset for offset in accumulate(steps, initial=0)]
        self.next = ids.pop()
        return ids


def status_for_age(age_ms: int, u: float) -> str:
    """The status drawn with uniform `u` for an order `age_ms` old."""
    weights = next(w for limit, w in _CUMULATIVE_STATUS_WEIGHTS if age_ms < limit)
    return ORDER_STATUSES[bisect(weights, u * weights[-1])]


_CUMULATIVE_STATUS_WEIGHTS = tuple(
    (limit, list(accumulate(weights))) for limit, weights in STATUS_WEIGHTS_BY_AGE
)


def generate_orders(
    catalog: Catalog, count: int, seed: int, now_ms: int
) -> tuple[list[Order], IdSequence, IdSequence]:
    """The orders (ascending id and creation time) and the id sequences to continue from."""
    rng = random.Random(f"orders:{seed}")
    rand = rng.random
    products = catalog.products
    # Popularity falls off with catalog position (a soft Zipf curve).
    popularity = [1 / (rank + 1) ** 0.8 for rank in range(len(products))]
    chosen = rng.choices(products, popularity, k=count)
    sizes = rng.choices(ITEM_COUNTS, ITEM_COUNT_WEIGHTS, k=count)
    quantities = iter(rng.choices(QUANTITIES, QUANTITY_WEIGHTS, k=sum(sizes)))
    # Creation times sorted ascending so that ids follow time, as auto-increment ids do.
    created = sorted(now_ms - 1 - int(rand() * YEAR_MS) for _ in range(count))
    order_ids, item_ids = IdSequence(FIRST_ORDER_ID, rng), IdSequence(FIRST_ITEM_ID, rng)
    next_order_id = iter(order_ids.take_many(count)).__next__
    next_item_id = iter(item_ids.take_many(sum(sizes))).__next__
    now_us = now_ms * 1000
    orders = []
    for product, size, created_ms in zip(chosen, sizes, created, strict=True):
        variants = product.variants
        n = len(variants)
        start = int(rand() * n)
        created_us = created_ms * 1000
        # Lines were last touched within an hour of the order, and never after 'now'.
        span = min(EDIT_WINDOW_US, now_us - created_us - 1)
        items = [
            Item(
                next_item_id(),
                variants[(start + j) % n],
                next(quantities),
                created_us + int(rand() * span),
            )
            for j in range(min(size, n))
        ]
        status = status_for_age(now_ms - created_ms, rand())
        order = Order(
            next_order_id(),
            product,
            status,
            created_ms,
            _seen(status, rand()),
            design_name(product, rng),
            items,
        )
        orders.append(order)
    return orders, order_ids, item_ids


def make_items(
    product: Product, count: int, updated_us: int, item_ids: IdSequence, rng: random.Random
) -> list[Item]:
    """`count` lines on a run of neighbouring variants of `product` (distinct variants)."""
    variants = product.variants
    start = rng.randrange(len(variants))
    quantities = rng.choices(QUANTITIES, QUANTITY_WEIGHTS, k=count)
    return [
        Item(item_ids.take(), variants[(start + j) % len(variants)], quantity, updated_us)
        for j, quantity in enumerate(quantities[: len(variants)])
    ]


def design_name(product: Product, rng: random.Random) -> str:
    """Most designs keep the product's name; some carry the customer's own title."""
    if rng.random() < 0.65:
        return product.name
    return f"{product.name} – {rng.choice(THEMES)}"


def _seen(status: str, u: float) -> bool:
    # The owner has looked at nearly every order past checkout, at few open carts.
    return u < (0.3 if status in ("shopping_cart", "editable") else 0.95)
