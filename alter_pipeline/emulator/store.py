"""The emulator's state: the catalog and the orders, their queries, and every mutation.

The HTTP handlers, live mode and tests all change state through the same methods here
(`create_order`, `set_status`, `set_quantities`, `set_all_quantities`, `delete_order`), so the
rules hold whoever calls:

* Quantities change only while an order is in a customer-editable status (`shopping_cart`,
  `editable`): the contract says final statuses lock the customer's edits, so a quantity change
  on any other status raises `Conflict` (HTTP 409). Status changes and deletion are the
  merchant's own actions and are allowed from any status.
* A quantity change recomputes line and order totals (they are derived from cents on every
  render) and moves the item's `updatedAt` to the clock's now, strictly later than before.

Each order caches its two JSON shapes as bytes; a mutation drops that order's cache. Sorted and
filtered views of the order list are cached per query and dropped when membership or sort order
can change (create, delete, status). One re-entrant lock guards everything: the server thread
and a test thread may both call in.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import islice
from typing import Any

from alter_pipeline.contract import (
    CUSTOMER_EDITABLE_STATUSES,
    DEFAULT_PRODUCTS_PAGE_SIZE,
    ORDER_STATUSES,
)
from alter_pipeline.emulator.catalog import Catalog, build_catalog
from alter_pipeline.emulator.config import BASE_PATH, EmulatorConfig
from alter_pipeline.emulator.errors import BadRequest, Conflict, NotFound
from alter_pipeline.emulator.generate import design_name, generate_orders, make_items
from alter_pipeline.emulator.model import Item, Order, Product, Variant
from alter_pipeline.emulator.render import (
    dumps,
    epoch_ms,
    order_detail_bytes,
    order_list_bytes,
    prepare_variant,
    product_dict,
)
from alter_pipeline.emulator.stats import RequestCounters

DEFAULT_ORDERS_PAGE_SIZE = 20
MAX_QUANTITY = 100_000
_VIEW_CACHE_SIZE = 64


@dataclass(frozen=True)
class OrderQuery:
    """`GET /customer-orders` parameters; defaults: newest first, 20 a page."""

    name: str | None = None
    category_id: int | None = None
    status: str | None = None
    offset: int = 0
    limit: int = DEFAULT_ORDERS_PAGE_SIZE
    order_by: str = "created_at"
    direction: str = "DESC"


@dataclass(frozen=True)
class ProductQuery:
    """`GET /products` parameters; defaults: ascending id, 9 a page."""

    name: str | None = None
    customizer: bool | None = None
    offset: int = 0
    limit: int = DEFAULT_PRODUCTS_PAGE_SIZE
    order_by: str = "id"
    direction: str = "ASC"


class Store:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.counters = RequestCounters()
        # Root of product media links; the server sets it to its base URL once bound.
        self.public_url = config.public_url or f"http://127.0.0.1{BASE_PATH}"
        now_ms = epoch_ms(config.now)
        self._start_us = now_ms * 1000
        self._start_monotonic = time.monotonic_ns()
        self.catalog = _prepared_catalog(config.products, config.seed, now_ms)
        self._variants = {v.id: v for p in self.catalog.products for v in p.variants}
        orders, self._order_ids, self._item_ids = generate_orders(
            self.catalog, config.orders, config.seed, now_ms
        )
        # Insertion order is ascending id: ids only grow, so the dict doubles as the id index.
        self._orders: dict[int, Order] = {order.id: order for order in orders}
        self._views: dict[tuple[Any, ...], list[Order]] = {}
        self._rng = random.Random(f"mutations:{config.seed}")

    # ---- clock -------------------------------------------------------------------------------

    def now_us(self) -> int:
        """Microseconds since the epoch on the emulator's clock."""
        if self.config.clock is not None:
            return epoch_ms(self.config.clock()) * 1000
        elapsed_us = (time.monotonic_ns() - self._start_monotonic) // 1000
        return self._start_us + elapsed_us

    def now(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self.now_us())

    # ---- reads (API bodies) ------------------------------------------------------------------

    def orders_page(self, query: OrderQuery) -> bytes:
        with self.lock:
            view = self._view(query)
            page = view[query.offset : query.offset + query.limit]
            items = b",".join(self._list_bytes(order) for order in page)
            return b'{"order":{"items":[%s],"total":%d}}' % (items, len(view))

    def order_body(self, order_id: int) -> bytes:
        with self.lock:
            return b'{"order":%s}' % self._detail_bytes(self._order(order_id))

    def batch_body(self, order_ids: Iterable[int]) -> bytes:
        """Found orders in the order asked (each once); unknown ids are simply absent."""
        with self.lock:
            found = [self._orders.get(i) for i in dict.fromkeys(order_ids)]
            parts = [self._detail_bytes(order) for order in found if order is not None]
            return b'{"orders":[%s]}' % b",".join(parts)

    def products_page(self, query: ProductQuery) -> bytes:
        products = self._product_view(query)
        page = products[query.offset : query.offset + query.limit]
        items = [product_dict(p, self.public_url) for p in page]
        return dumps({"products": {"items": items, "total": len(products)}})

    def product_body(self, product_id: int) -> bytes:
        return dumps(product_dict(self._product(product_id), self.public_url))

    # ---- mutations ---------------------------------------------------------------------------

    def create_order(
        self,
        *,
        product_id: int | None = None,
        lines: Sequence[tuple[int, int]] | None = None,
        status: str = "shopping_cart",
        design: str | None = None,
        seen: bool = False,
    ) -> dict[str, Any]:
        """A new order created now; `lines` are (variant id, quantity) of `product_id`'s
        variants. Unset parts are drawn at random. Returns the order in detail shape."""
        _check_status(status)
        with self.lock:
            product = self._pick_product(product_id)
            now_us = self.now_us()
            created_ms = now_us // 1000
            if lines is None:
                count = self._rng.randint(1, 3)
                items = make_items(product, count, now_us, self._item_ids, self._rng)
            else:
                items = self._lines(product, lines, now_us)
            order = Order(
                id=self._order_ids.take(),
                product=product,
                status=status,
                created_ms=created_ms,
                seen=seen,
                design_name=design or design_name(product, self._rng),
                items=items,
            )
            self._orders[order.id] = order
            self._views.clear()
            return self._parse(self._detail_bytes(order))

    def set_status(self, order_id: int, status: str) -> None:
        _check_status(status)
        with self.lock:
            order = self._order(order_id)
            if order.status != status:
                order.status = status
                order.forget_bytes()
                self._views.clear()

    def set_quantities(
        self, order_id: int, quantities: Mapping[int, int], *, force: bool = False
    ) -> None:
        """Set item (orderDetailId) quantities, all or none. `force` skips the status lock."""
        for quantity in quantities.values():
            _check_quantity(quantity)
        with self.lock:
            order = self._order(order_id)
            items = {item.id: item for item in order.items}
            unknown = [detail_id for detail_id in quantities if detail_id not in items]
            if unknown:
                raise BadRequest(f"orderDetailId {unknown[0]} is not an item of order {order_id}")
            if not force:
                _check_editable(order)
            now_us = self.now_us()
            for detail_id, quantity in quantities.items():
                item = items[detail_id]
                item.quantity = quantity
                item.updated_us = max(now_us, item.updated_us + 1)
                item.tail = None
            order.forget_bytes()

    def set_quantity(
        self, order_id: int, item_id: int, quantity: int, *, force: bool = False
    ) -> None:
        self.set_quantities(order_id, {item_id: quantity}, force=force)

    def set_all_quantities(self, order_id: int, quantity: int, *, force: bool = False) -> None:
        with self.lock:
            order = self._order(order_id)
            self.set_quantities(
                order_id, dict.fromkeys((i.id for i in order.items), quantity), force=force
            )

    def delete_order(self, order_id: int) -> None:
        with self.lock:
            self._order(order_id)
            del self._orders[order_id]
            self._views.clear()

    # ---- views for tests and comparisons (API-shaped dicts, money as Decimal) ---------------

    def get_order(self, order_id: int) -> dict[str, Any]:
        """One order in detail shape."""
        with self.lock:
            return self._parse(self._detail_bytes(self._order(order_id)))

    def orders_detail(self) -> list[dict[str, Any]]:
        """Every order in detail shape, ascending id."""
        with self.lock:
            return self._parse(b"[%s]" % b",".join(map(self._detail_bytes, self._orders.values())))

    def orders_list(self) -> list[dict[str, Any]]:
        """Every order in list shape (as `GET /customer-orders` shows it), ascending id."""
        with self.lock:
            return self._parse(b"[%s]" % b",".join(map(self._list_bytes, self._orders.values())))

    def products(self) -> list[dict[str, Any]]:
        return [self._parse(dumps(product_dict(p, self.public_url))) for p in self._all_products()]

    def snapshot(self) -> dict[str, Any]:
        """The whole store as the API shows it: list-shape orders and products, by id."""
        with self.lock:
            return {"orders": self.orders_list(), "products": self.products()}

    def order_ids(self, statuses: Iterable[str] | None = None) -> list[int]:
        with self.lock:
            if statuses is None:
                return list(self._orders)
            wanted = set(statuses)
            return [o.id for o in self._orders.values() if o.status in wanted]

    def order_count(self) -> int:
        return len(self._orders)

    def status_of(self, order_id: int) -> str | None:
        order = self._orders.get(order_id)
        return order.status if order else None

    def recent_order_ids(self, window: int, statuses: Iterable[str]) -> list[int]:
        """Ids among the newest `window` orders whose status is one of `statuses`."""
        wanted = set(statuses)
        with self.lock:
            newest = islice(reversed(self._orders.values()), window)
            return [order.id for order in newest if order.status in wanted]

    def latest_order_id(self) -> int | None:
        with self.lock:
            return next(reversed(self._orders), None)

    def warm(self) -> None:
        """Render every order's two shapes now instead of on first request."""
        with self.lock:
            for order in self._orders.values():
                self._list_bytes(order)
                self._detail_bytes(order)

    # ---- internals ---------------------------------------------------------------------------

    def _order(self, order_id: int) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        return order

    def _product(self, product_id: int) -> Product:
        product = self.catalog.product(product_id)
        if product is None:
            raise NotFound(f"product {product_id} not found")
        return product

    def _all_products(self) -> list[Product]:
        return self.catalog.products

    def _pick_product(self, product_id: int | None) -> Product:
        if product_id is None:
            return self._rng.choice(self.catalog.products)
        return self._product(product_id)

    def _lines(self, product: Product, lines: Sequence[tuple[int, int]], now_us: int) -> list[Item]:
        items = []
        for variant_id, quantity in lines:
            _check_quantity(quantity)
            variant: Variant | None = self._variants.get(variant_id)
            if variant is None or variant.product_id != product.id:
                raise BadRequest(f"variant {variant_id} does not belong to product {product.id}")
            items.append(Item(self._item_ids.take(), variant, quantity, now_us))
        if not items:
            raise BadRequest("an order needs at least one item")
        return items

    def _list_bytes(self, order: Order) -> bytes:
        if order.list_bytes is None:
            order.list_bytes = order_list_bytes(order, self.config.app_url)
        return order.list_bytes

    def _detail_bytes(self, order: Order) -> bytes:
        if order.detail_bytes is None:
            order.detail_bytes = order_detail_bytes(order, self.config.app_url)
        return order.detail_bytes

    def _view(self, query: OrderQuery) -> list[Order]:
        key = (query.name, query.category_id, query.status, query.order_by, query.direction)
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= _VIEW_CACHE_SIZE:
                self._views.clear()
            view = self._views[key] = _sorted(
                _filtered(self._orders.values(), query.name, query.category_id, query.status),
                query.order_by,
                query.direction,
            )
        return view

    def _product_view(self, query: ProductQuery) -> list[Product]:
        products: Iterable[Product] = self.catalog.products
        if query.name:
            needle = query.name.casefold()
            products = [p for p in products if needle in p.name.casefold()]
        if query.customizer is not None:
            products = [p for p in products if p.is_customizer == query.customizer]
        key = {
            "id": lambda p: p.id,
            "name": lambda p: (p.name.casefold(), p.id),
            "created_at": lambda p: (p.created_ms, p.id),
        }[query.order_by]
        return sorted(products, key=key, reverse=query.direction == "DESC")

    @staticmethod
    def _parse(body: bytes) -> Any:
        return json.loads(body, parse_float=Decimal)


@lru_cache(maxsize=8)
def _prepared_catalog(count: int, seed: int, now_ms: int) -> Catalog:
    """The catalog with its variant fragments rendered. Shared between stores of the same
    settings (a test suite builds hundreds): nothing ever mutates a catalog."""
    catalog = build_catalog(count, seed, now_ms)
    for product in catalog.products:
        for variant in product.variants:
            prepare_variant(variant)
    return catalog


def _filtered(
    orders: Iterable[Order], name: str | None, category_id: int | None, status: str | None
) -> list[Order]:
    selected = list(orders)
    if status is not None:
        selected = [o for o in selected if o.status == status]
    if category_id is not None:
        selected = [o for o in selected if o.product.group and o.product.group.id == category_id]
    if name:
        needle = name.casefold()
        selected = [
            o
            for o in selected
            if needle in o.design_name.casefold() or needle in o.product.name.casefold()
        ]
    return selected


def _sorted(orders: list[Order], order_by: str, direction: str) -> list[Order]:
    # Ties break on id so that paging is stable.
    if order_by == "created_at":
        orders = sorted(orders, key=lambda o: (o.created_ms, o.id))
    elif order_by == "design_name":
        orders = sorted(orders, key=lambda o: (o.design_name.casefold(), o.id))
    # order_by == "id": `orders` is already ascending id (dict insertion order).
    if direction == "DESC":
        orders.reverse()
    return orders


def _check_status(status: str) -> None:
    if status not in ORDER_STATUSES:
        raise BadRequest(f"unknown status {status!r}; expected one of {', '.join(ORDER_STATUSES)}")


def _check_quantity(quantity: object) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise BadRequest(f"quantity must be an integer >= 1, got {quantity!r}")
    if quantity > MAX_QUANTITY:
        raise BadRequest(f"quantity must be at most {MAX_QUANTITY}, got {quantity}")


def _check_editable(order: Order) -> None:
    if order.status not in CUSTOMER_EDITABLE_STATUSES:
        raise Conflict(
            f"order {order.id} is {order.status}: quantities can change only while the order "
            f"is {' or '.join(sorted(CUSTOMER_EDITABLE_STATUSES))}"
        )
