"""One full sync: page through the API and write a new lake snapshot, streaming.

Plain Python over the API client and the lake; the Dagster assets call `full_sync` and turn its
report into materialization metadata, and so can any other scheduler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from alter_pipeline.lake import Lake, SnapshotWriter, schemas
from alter_pipeline.lake.flatten import (
    Rejection,
    flatten_orders,
    flatten_products,
    rejections_to_batch,
)

ProgressCallback = Callable[[str, int, int, int], None]
"""progress(entity, pages_done, pages_total, rows_so_far)"""


class PagingClient(Protocol):
    """What a sync needs of `alter_pipeline.api.AlterClient`."""

    def iter_order_pages(self, *, concurrency: int = ...) -> Any: ...

    def iter_product_pages(self, *, concurrency: int = ...) -> Any: ...


@dataclass
class EntityStats:
    rows: int = 0
    child_rows: int = 0
    pages: int = 0
    api_total: int = 0
    rejected: int = 0


@dataclass
class SyncReport:
    snapshot_id: str
    started_at: datetime
    duration_s: float
    orders: EntityStats
    products: EntityStats
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        rows = self.orders.rows + self.orders.child_rows + self.products.rows
        return rows / self.duration_s if self.duration_s else 0.0


def _no_progress(entity: str, done: int, total: int, rows: int) -> None:
    return None


def write_orders(
    client: PagingClient,
    writer: SnapshotWriter,
    *,
    concurrency: int,
    progress: ProgressCallback,
    rejected: list[Rejection],
) -> EntityStats:
    stats = EntityStats()
    orders = writer.table("orders", schemas.ORDERS)
    items = writer.table("order_items", schemas.ORDER_ITEMS)
    for page in client.iter_order_pages(concurrency=concurrency):
        flat = flatten_orders(page.items)
        orders.write(flat.orders)
        items.write(flat.items)
        rejected.extend(flat.rejected)
        stats.pages += 1
        stats.api_total = page.total
        stats.rows, stats.child_rows = orders.rows, items.rows
        stats.rejected += len(flat.rejected)
        progress("orders", stats.pages, _pages(page.total), stats.rows)
    return stats


def write_products(
    client: PagingClient,
    writer: SnapshotWriter,
    *,
    concurrency: int,
    progress: ProgressCallback,
    rejected: list[Rejection],
) -> EntityStats:
    stats = EntityStats()
    products = writer.table("products", schemas.PRODUCTS)
    for page in client.iter_product_pages(concurrency=concurrency):
        flat = flatten_products(page.items)
        products.write(flat.products)
        rejected.extend(flat.rejected)
        stats.pages += 1
        stats.api_total = page.total
        stats.rows = products.rows
        stats.rejected += len(flat.rejected)
        progress("products", stats.pages, _pages(page.total), stats.rows)
    return stats


def _pages(total: int, page_size: int = 50) -> int:
    return max(1, -(-total // page_size))


def full_sync(
    client: PagingClient,
    lake: Lake,
    *,
    concurrency: int = 8,
    progress: ProgressCallback | None = None,
    meta: dict[str, Any] | None = None,
) -> SyncReport:
    """Read every order and product into a new snapshot; commit it only if all went well."""
    progress = progress or _no_progress
    started, clock = datetime.now(UTC), time.perf_counter()
    rejected: list[Rejection] = []
    with lake.write() as writer:
        orders = write_orders(
            client, writer, concurrency=concurrency, progress=progress, rejected=rejected
        )
        products = write_products(
            client, writer, concurrency=concurrency, progress=progress, rejected=rejected
        )
        writer.table("rejected_records", schemas.REJECTED_RECORDS).write(
            rejections_to_batch(rejected, started)
        )
        writer.meta.update(
            meta or {},
            mode="full",
            api_total_orders=orders.api_total,
            api_total_products=products.api_total,
            synced_at=started.isoformat(),
        )
        snapshot_id = writer.snapshot_id
    return SyncReport(
        snapshot_id=snapshot_id,
        started_at=started,
        duration_s=time.perf_counter() - clock,
        orders=orders,
        products=products,
        rejected=rejected,
    )


# Extra in-process observers of progress (the CLI's progress bar); Dagster logs it regardless.
progress_listeners: list[ProgressCallback] = []
