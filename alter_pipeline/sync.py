"""Syncs: page through the API and write a new lake snapshot, then record what changed.

Plain Python over the API client and the lake; the Dagster assets call `run_sync` and turn its
report into materialization metadata (and so can any other scheduler).

- A full sync (a reconcile) lists every order and product, streaming pages into Parquet.
- An incremental sync spends its requests where changes happen: new orders from the newest end
  of the list, a batch re-read of open orders active in the last `recent_days`, and older open
  orders in rotation (each re-read within `rotation_syncs` syncs). Completed and cancelled
  orders are re-read only by a reconcile. Untouched rows are carried from the previous snapshot.
- Both then diff the new snapshot against the previous one (events, SCD2 history), in the same
  atomic commit.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import duckdb
import pyarrow as pa

from alter_pipeline import selfcheck
from alter_pipeline.api.models import AuthInfo
from alter_pipeline.api.paging import Decoded, Decoder, FastPage, Page
from alter_pipeline.contract import ORDER_STATUSES, fields
from alter_pipeline.events import detect
from alter_pipeline.events.schema import ORDER_EVENTS, ORDER_EVENTS_TABLE
from alter_pipeline.lake import Lake, Snapshot, SnapshotWriter, fast_flatten, schemas
from alter_pipeline.lake.flatten import (
    Rejection,
    flatten_orders,
    flatten_products,
    rejections_to_batch,
)
from alter_pipeline.lake.snapshot import conform

ProgressCallback = Callable[[str, int, int, int], None]
"""progress(entity, pages_done, pages_total, rows_so_far)"""


class SyncClient(Protocol):
    """What a sync needs of an API client (`api.AlterClient` is one; tests may pass another)."""

    def auth_check(self) -> AuthInfo: ...

    def list_orders_raw(
        self,
        *,
        order_status: str | None = None,
        offset: int = 0,
        limit: int = ...,
        order_by: str | None = None,
        direction: str | None = None,
    ) -> Page: ...

    def get_orders_raw(self, order_ids: Iterable[int]) -> list[dict[str, Any]]: ...

    def iter_order_pages(
        self, *, concurrency: int = ..., decoder: Decoder | None = None
    ) -> Iterator[Page | FastPage]: ...

    def iter_product_pages(self, *, concurrency: int = ...) -> Iterator[Page]: ...


FINAL_STATUSES = ("completed", "cancelled")
PAGE = selfcheck.PAGE


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncrementalPolicy:
    recent_days: int = 7
    rotation_syncs: int = 48


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
    mode: str
    started_at: datetime
    duration_s: float
    orders: EntityStats
    products: EntityStats
    events: dict[str, int] = field(default_factory=dict)
    reread: int = 0
    new_orders: int = 0
    deleted: int = 0
    # Orders a reconcile found changed since the last sync: what the incremental path missed
    # (or what changed after it ran).
    changed_orders: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    check: CheckFigures = field(default_factory=lambda: CheckFigures())
    # Why an incremental sync listed every order instead (its self-check's finding).
    escalated: str = ""
    # A full sync whose previous snapshot could not be read (its files overwritten): it
    # rebuilt the lake, and its change events were computed against nothing.
    previous_unreadable: str | None = None

    @property
    def rows_per_second(self) -> float:
        rows = self.orders.rows + self.orders.child_rows + self.products.rows
        return rows / self.duration_s if self.duration_s else 0.0

    @property
    def event_count(self) -> int:
        return sum(self.events.values())


def _no_progress(entity: str, done: int, total: int, rows: int) -> None:
    return None


def _pages(total: int) -> int:
    return max(1, -(-total // PAGE))


# ---- full listing ------------------------------------------------------------------------


def write_all_orders(
    client: SyncClient,
    writer: SnapshotWriter,
    report: SyncReport,
    progress: ProgressCallback,
    concurrency: int,
) -> selfcheck.HeldIds:
    """List every order into the snapshot; returns the ids listed (rejected ones included)."""
    stats = report.orders
    orders = writer.table("orders", schemas.ORDERS)
    items = writer.table("order_items", schemas.ORDER_ITEMS)
    listed: list[pa.Array] = []
    # The pager's decoder thread reads each page with Arrow's JSON reader (off the GIL) and
    # builds its rows with Arrow compute; a page it cannot prove identical goes through
    # flatten_orders (same rows, same rejections). Pages are written 16 at a time. The
    # decoder's caches are this sync's own.
    caches = fast_flatten.DecodeCaches()

    def decoder(bodies: list[bytes]) -> list[Decoded | None]:
        # ArrowOrders has Decoded's fields, read-only (frozen) where the Protocol says settable.
        return cast(list[Decoded | None], fast_flatten.decode_orders_pages(bodies, caches))

    pages = client.iter_order_pages(concurrency=concurrency, decoder=decoder)
    for batch, flat in fast_flatten.flatten_order_pages(pages):
        orders.write(flat.orders)
        items.write(flat.items)
        listed.append(flat.orders.column("order_id"))
        report.rejected.extend(flat.rejected)
        stats.pages += len(batch)
        stats.api_total = batch[-1].total
        stats.rejected += len(flat.rejected)
        progress("orders", stats.pages, _pages(stats.api_total), orders.rows)
    stats.rows, stats.child_rows = orders.rows, items.rows
    rejected = {_as_id(r.record_id) for r in report.rejected if r.entity == "order"}
    return selfcheck.HeldIds(
        [*pa.chunked_array(listed, pa.int64()).to_pylist(), *(i for i in rejected if i)]
    )


class ListingMismatchError(RuntimeError):
    """A full listing could not be brought into agreement with the API's `total`."""


def check_full_listing(
    client: SyncClient,
    writer: SnapshotWriter,
    report: SyncReport,
    con: duckdb.DuckDBPyConnection,
    held: selfcheck.HeldIds,
) -> None:
    """Make the listing agree with the `total` the API reports once it has ended: orders
    read and then deleted while the listing ran (ghosts) are found and dropped, orders
    created after the newest end was read are added. Fails (nothing committed) when no
    agreement comes within the bounds."""
    if any(r.entity == "order" and _as_id(r.record_id) is None for r in report.rejected):
        report.check.path = "skipped"
        report.check.reason = "the listing has records without a usable id (rejected_records)"
        return
    listed = set(held.between(-math.inf, math.inf))

    def confirm(extra: set[int]) -> set[int]:
        return extra - orders_still_there(client, sorted(extra))

    result = SelfCheck(client, report.check).converge(held, confirm=confirm)
    if result.path == "unresolved":
        raise ListingMismatchError(result.reason)
    report.check.ghosts_dropped = len(result.deleted & listed)
    report.orders.api_total = result.total
    if result.deleted or result.new_rows:
        _patch_listing(con, writer, report, result.deleted, list(result.new_rows.values()))


def _patch_listing(
    con: duckdb.DuckDBPyConnection,
    writer: SnapshotWriter,
    report: SyncReport,
    deleted: set[int],
    new_rows: list[dict[str, Any]],
) -> None:
    """Rewrite the listed orders and items without `deleted`, plus `new_rows`."""
    flat = flatten_orders(new_rows)
    report.rejected.extend(flat.rejected)
    report.orders.rejected += len(flat.rejected)
    constants = writer.constants()
    con.register("fresh_orders", conform(flat.orders, schemas.ORDERS, constants))
    con.register("fresh_items", conform(flat.items, schemas.ORDER_ITEMS, constants))
    con.register("gone", pa.table({"order_id": pa.array(sorted(deleted), pa.int64())}))
    counts = []
    for table, schema, fresh in (
        ("orders", schemas.ORDERS, "fresh_orders"),
        ("order_items", schemas.ORDER_ITEMS, "fresh_items"),
    ):
        with writer.rewrite(table) as listed:
            old = detect.parquet_glob(listed)
            sql = f"""SELECT * FROM read_parquet('{old}') WHERE order_id NOT IN
                          (SELECT order_id FROM gone UNION ALL SELECT order_id FROM fresh_orders)
                      UNION ALL SELECT * FROM {fresh}"""
            counts.append(_stream(con, sql, writer, table, schema))
    report.orders.rows, report.orders.child_rows = counts


def write_all_products(
    client: SyncClient,
    writer: SnapshotWriter,
    report: SyncReport,
    progress: ProgressCallback,
    concurrency: int,
) -> None:
    stats = report.products
    products = writer.table("products", schemas.PRODUCTS)
    for page in client.iter_product_pages(concurrency=concurrency):
        flat = flatten_products(page.items)
        products.write(flat.products)
        report.rejected.extend(flat.rejected)
        stats.pages += 1
        stats.api_total = page.total
        stats.rejected += len(flat.rejected)
        progress("products", stats.pages, _pages(page.total), products.rows)
    stats.rows = products.rows


def keep_rejected(
    client: SyncClient, writer: SnapshotWriter, report: SyncReport, con: duckdb.DuckDBPyConnection
) -> None:
    """A full listing leaves out the records that broke the contract; an order or product the
    previous snapshot had is not deleted for that: its last valid rows are carried over (the
    rejection itself is in rejected_records). Which unlisted orders still exist is known from
    the rejected records' ids or, when one has no usable id, asked of the batch endpoint."""
    parent = writer.parent
    if not report.rejected or parent is None or not parent.has_table("orders"):
        return
    writer.close_tables()
    carried = _carry_rejected(con, writer, "orders", "order_id", schemas.ORDERS, report, client)
    if carried:
        old_items = detect.parquet_glob(parent.table_dir("order_items"))
        report.orders.rows += carried
        report.orders.child_rows += _stream(
            con,
            f"""SELECT * FROM read_parquet('{old_items}')
                WHERE order_id IN (SELECT order_id FROM kept_orders)""",
            writer,
            "order_items",
            schemas.ORDER_ITEMS,
        )
    if parent.has_table("products"):
        report.products.rows += _carry_rejected(
            con, writer, "products", "product_id", schemas.PRODUCTS, report, None
        )


def _carry_rejected(
    con: duckdb.DuckDBPyConnection,
    writer: SnapshotWriter,
    table: str,
    key: str,
    schema: pa.Schema,
    report: SyncReport,
    client: SyncClient | None,
) -> int:
    """Copy the parent's rows of rejected, still existing `table` rows the listing lacked."""
    assert writer.parent is not None
    entity = "order" if table == "orders" else "product"
    ids = {_as_id(r.record_id) for r in report.rejected if r.entity == entity}
    if not ids:
        return 0
    old = detect.parquet_glob(writer.parent.table_dir(table))
    new = detect.parquet_glob(writer.tmp_dir / table)
    listed_before = f"SELECT {key} FROM read_parquet('{old}')"
    listed_now = f"SELECT {key} FROM read_parquet('{new}')"
    unlisted = [row[0] for row in con.execute(f"{listed_before} EXCEPT {listed_now}").fetchall()]
    present = set(unlisted) & ids
    if None in ids and client is not None:
        present |= orders_still_there(client, [i for i in unlisted if i not in present])
    name = f"kept_{table}"
    con.register(name, pa.table({key: pa.array(sorted(present), pa.int64())}))
    if not present:
        return 0
    sql = f"SELECT * FROM read_parquet('{old}') WHERE {key} IN (SELECT {key} FROM {name})"
    return _stream(con, sql, writer, table, schema)


def _as_id(record_id: str | None) -> int | None:
    return int(record_id) if record_id is not None and record_id.isdigit() else None


def orders_still_there(client: SyncClient, candidates: list[int]) -> set[int]:
    """Which of `candidates` the API still has, by batch reads. An answer holding a record
    without a usable id cannot say whose it is: that batch is split, down to single ids (a
    single id's answer, broken or not, proves the order exists)."""
    present: set[int] = set()
    pending = [candidates[i : i + PAGE] for i in range(0, len(candidates), PAGE)]
    while pending:
        chunk = pending.pop()
        answer = client.get_orders_raw(chunk)
        ids = [o.get("id") if isinstance(o, dict) else None for o in answer]
        if all(isinstance(i, int) for i in ids):
            present |= {i for i in ids if i is not None} & set(chunk)
        elif len(chunk) == 1:
            present.add(chunk[0])
        else:
            pending += [chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]]
    return present


# ---- self-check against the API's totals (selfcheck.py) --------------------------------------


@dataclass
class CheckFigures:
    """What a sync's self-check did, for the run's metadata."""

    path: str = "not run"
    reason: str = ""
    total_reads: int = 0  # reads of the newest end of the list (its `total`)
    locate_reads: int = 0  # page reads spent locating differences
    status_reads: int = 0  # per-status totals and their locating
    deletions_found: int = 0  # deleted orders only the check found
    ghosts_dropped: int = 0  # orders a full listing read, then found deleted meanwhile
    status_changes_found: int = 0  # orders whose status moved, found by per-status totals
    missing_found: int = 0  # orders the API lists that the sync did not hold

    @property
    def requests(self) -> int:
        return self.total_reads + self.locate_reads + self.status_reads


class SelfCheck:
    """Runs `selfcheck` over this client's order listing and keeps the figures."""

    def __init__(
        self, client: SyncClient, figures: CheckFigures, budget: int | None = None
    ) -> None:
        self._client = client
        self.figures = figures
        self._budget = budget  # page reads for locating; None: as many as one listing

    def newest(self, offset: int) -> Any:
        return self._client.list_orders_raw(
            offset=offset, limit=PAGE, order_by="id", direction="DESC"
        )

    def listing(self, status: str | None = None) -> selfcheck.ReadPage:
        def read(offset: int) -> Any:
            return self._client.list_orders_raw(
                offset=offset, limit=PAGE, order_by="id", direction="ASC", order_status=status
            )

        return read

    def converge(
        self,
        held: selfcheck.HeldIds,
        updates: OrderUpdates | None = None,
        confirm: selfcheck.Confirm | None = None,
    ) -> selfcheck.Convergence:
        """Agree with the total. With `updates` (an incremental sync): extra ids are batch
        re-read into it, new rows taken into it, and a costly difference escalates."""
        if updates is not None:
            confirm = functools.partial(reread_into, self._client, updates)
        assert confirm is not None
        # Locating may cost what one listing costs before an incremental sync lists instead;
        # a reconcile has no cheaper way out, so it may spend twice that before it fails.
        listing = selfcheck.listing_cost(len(held))
        budget = self._budget or (listing if updates is not None else 2 * max(listing, 32))
        result = selfcheck.converge(
            held, self.newest, self.listing(), confirm, budget=budget, escalate=updates is not None
        )
        if updates is not None:
            # Rows found new in one round may have been found deleted in a later one.
            fresh = [row for i, row in result.new_rows.items() if i not in result.deleted]
            updates.take([*fresh, *result.unkeyed_rows])
        figures = self.figures
        if figures.path != "located" or result.path not in ("agreed", "located"):
            figures.path = result.path
        figures.reason = result.reason
        figures.total_reads += result.total_reads
        figures.locate_reads += result.locate_reads
        figures.deletions_found += len(result.deleted)
        figures.missing_found += result.found_missing
        return result

    def statuses(self, statuses: dict[int, str | None], updates: OrderUpdates) -> bool:
        """Compare each status's `total` with the orders held in it; locate the orders whose
        status moved (or that were deleted) and re-read them into `updates`. Returns whether
        orders were found deleted or new (the overall total must then be checked again).
        Raises EscalateToFullListing when locating would cost more than a listing."""
        by_status: dict[str | None, list[int]] = {}
        for order_id, status in statuses.items():
            by_status.setdefault(status, []).append(order_id)
        uneven = []
        for status in ORDER_STATUSES:
            held = selfcheck.HeldIds(by_status.get(status, ()))
            total = self._client.list_orders_raw(
                offset=0, limit=1, order_by="id", direction="ASC", order_status=status
            ).total
            self.figures.status_reads += 1
            if len(held) != total:
                uneven.append((status, held, total))
        budget = selfcheck.listing_cost(len(statuses)) - self.figures.locate_reads
        cost = sum(selfcheck.locate_cost(abs(len(h) - t), len(h)) for _, h, t in uneven)
        if cost > budget:
            moved = ", ".join(f"{s} {len(h) - t:+d}" for s, h, t in uneven)
            raise EscalateToFullListing(
                f"status totals differ ({moved}): locating ~{cost} pages would cost more than "
                f"a full listing ({budget} pages)"
            )
        extra: set[int] = set()
        missing: dict[int, dict[str, Any]] = {}
        for status, held, total in uneven:
            found = selfcheck.locate(held, self.listing(status), total, budget)
            budget -= found.reads
            self.figures.status_reads += found.reads
            extra |= found.extra
            missing.update(found.missing)
        updates.take(missing.values())
        deleted = reread_into(self._client, updates, extra - set(missing))
        self.figures.deletions_found += len(deleted)
        self.figures.status_changes_found += len((extra | set(missing)) - deleted)
        return bool(deleted) or any(i not in statuses for i in missing)


# ---- incremental -------------------------------------------------------------------------


@dataclass
class OrderUpdates:
    """What a sync learned of single orders since the previous snapshot: their newest raw
    rows by id (list or detail shape), the ids found deleted, and records without a usable id
    (the flattener rejects them, with the reason: they must reach rejected_records)."""

    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    _broken: dict[str, Any] = field(default_factory=dict)

    @property
    def broken(self) -> list[Any]:
        return list(self._broken.values())

    def take(self, rows: Iterable[Any]) -> None:
        for row in rows:
            order_id = selfcheck.row_id(row)
            if order_id is None:  # the same broken record read twice is one rejection
                self._broken.setdefault(json.dumps(row, sort_keys=True, default=str), row)
                continue
            # A detail-shape row keeps what the list said moments ago of the fields it lacks.
            self.rows[order_id] = fields.merge_detail(row, self.rows.get(order_id))
            self.deleted.discard(order_id)

    def drop(self, order_ids: Iterable[int]) -> None:
        for order_id in order_ids:
            self.rows.pop(order_id, None)
            self.deleted.add(order_id)


def reread_into(client: SyncClient, updates: OrderUpdates, wanted: Iterable[int]) -> set[int]:
    """Batch re-read `wanted` into `updates`; ids the answers lack are deleted (asked about one
    by one when an answer holds a record without a usable id). Returns the deleted ids."""
    wanted = sorted(set(wanted))
    reread = client.get_orders_raw(wanted) if wanted else []
    answered = [o.get("id") if isinstance(o, dict) else None for o in reread]
    unanswered = set(wanted) - set(answered)
    if not all(isinstance(i, int) for i in answered):
        # A record whose id is broken could be any of the unanswered orders: ask about those.
        unanswered -= orders_still_there(client, sorted(unanswered))
    updates.take(reread)
    updates.drop(unanswered)
    return unanswered


def rejected_order_ids(con: duckdb.DuckDBPyConnection, parent: Snapshot) -> list[int]:
    """Orders the previous sync rejected, where their id was readable: re-read them, so a
    record the API has fixed arrives with the next sync, not only with the next reconcile."""
    if not parent.has_table("rejected_records"):
        return []
    rejected = detect.parquet_glob(parent.table_dir("rejected_records"))
    rows = con.execute(
        f"""SELECT DISTINCT TRY_CAST(record_id AS BIGINT) AS order_id
            FROM read_parquet('{rejected}')
            WHERE entity = 'order' AND TRY_CAST(record_id AS BIGINT) > 0"""
    ).fetchall()
    return [row[0] for row in rows]


def ids_to_reread(
    con: duckdb.DuckDBPyConnection,
    parent: Snapshot,
    policy: IncrementalPolicy,
    slot: int,
    now: datetime,
) -> list[int]:
    orders = detect.parquet_glob(parent.table_dir("orders"))
    items = detect.parquet_glob(parent.table_dir("order_items"))
    rows = con.execute(
        f"""
        SELECT o.order_id
        FROM read_parquet('{orders}') o
        LEFT JOIN (SELECT order_id, max(updated_at) AS touched FROM read_parquet('{items}')
                   GROUP BY 1) i USING (order_id)
        WHERE o.status NOT IN {FINAL_STATUSES}
          AND (o.created_at >= $since OR i.touched >= $since OR o.order_id % $slots = $slot)
        ORDER BY 1
        """,
        {
            "since": now - timedelta(days=policy.recent_days),
            "slots": policy.rotation_syncs,
            "slot": slot % policy.rotation_syncs,
        },
    ).fetchall()
    return [r[0] for r in rows]


def _parent_statuses(con: duckdb.DuckDBPyConnection, parent: Snapshot) -> dict[int, str | None]:
    orders = detect.parquet_glob(parent.table_dir("orders"))
    rows = con.execute(f"SELECT order_id, status FROM read_parquet('{orders}')").fetchall()
    return dict(rows)


# A refresh after a rules run spends at most this many page reads locating differences.
REFRESH_CHECK_BUDGET = 12


class EscalateToFullListing(Exception):
    """An incremental sync's self-check found a difference that costs more to locate than
    a full listing: the sync lists every order instead (the reason is in the report)."""


def write_incremental_orders(
    client: SyncClient,
    writer: SnapshotWriter,
    report: SyncReport,
    con: duckdb.DuckDBPyConnection,
    policy: IncrementalPolicy,
    now: datetime,
) -> None:
    """Re-read what the policy says may have changed, check the result against the API's
    totals (locating deletions, status changes and anything else missed), then merge."""
    parent = writer.parent
    assert parent is not None
    slot = int(parent.meta("rotation_slot", 0)) + 1
    writer.meta["rotation_slot"] = slot
    wanted = set(ids_to_reread(con, parent, policy, slot, now))
    wanted |= set(rejected_order_ids(con, parent))
    update_orders(client, writer, report, con, wanted, thorough=True)


def update_orders(
    client: SyncClient,
    writer: SnapshotWriter,
    report: SyncReport,
    con: duckdb.DuckDBPyConnection,
    wanted: Iterable[int],
    *,
    thorough: bool,
) -> None:
    """Batch re-read `wanted`, agree with the API's `total` (new orders, deletions), and
    merge over the parent's rows. `thorough` (an incremental sync): per-status totals too,
    and a difference that costs more to locate than a listing raises EscalateToFullListing.
    Otherwise (a refresh after a rules run) the check stays within a few requests and, where
    it cannot agree, the re-read orders are merged and the recorded total left as it was."""
    parent = writer.parent
    assert parent is not None
    statuses = _parent_statuses(con, parent)
    known_max = max(statuses, default=0)
    wanted = sorted(set(wanted))
    updates = OrderUpdates()
    reread_into(client, updates, wanted)
    check = SelfCheck(client, report.check, budget=None if thorough else REFRESH_CHECK_BUDGET)
    held = selfcheck.HeldIds((set(statuses) | set(updates.rows)) - updates.deleted)
    result = check.converge(held, updates)
    if result.agreed and thorough:
        statuses.update({i: _status_of(row) for i, row in updates.rows.items()})
        for order_id in updates.deleted:
            statuses.pop(order_id, None)
        if check.statuses(statuses, updates):
            held.update(add=updates.rows, remove=updates.deleted)
            result = check.converge(held, updates)
    if result.path == "escalate" and thorough:
        raise EscalateToFullListing(result.reason)
    if result.agreed:
        report.orders.api_total = result.total
        writer.meta["api_total_orders"] = result.total
    report.reread = len(wanted)
    report.new_orders = sum(1 for i in updates.rows if i > known_max)
    report.deleted = len(updates.deleted)
    flat = flatten_orders([*updates.rows.values(), *updates.broken])
    report.rejected.extend(flat.rejected)
    report.orders.rejected = len(flat.rejected)
    report.orders.rows, report.orders.child_rows = _merge_into(
        con, writer, parent, flat.orders, flat.items, updates.deleted
    )


def _status_of(row: dict[str, Any]) -> str | None:
    status = row.get("orderStatus")
    return status if isinstance(status, str) else None


def _merge_into(
    con: duckdb.DuckDBPyConnection,
    writer: SnapshotWriter,
    parent: Snapshot,
    fresh_orders: pa.RecordBatch,
    fresh_items: pa.RecordBatch,
    deleted: Iterable[int],
) -> tuple[int, int]:
    """Previous rows of untouched orders plus the fresh rows, streamed into the new snapshot."""
    constants = writer.constants()
    fresh_orders = conform(fresh_orders, schemas.ORDERS, constants)
    fresh_items = conform(fresh_items, schemas.ORDER_ITEMS, constants)
    con.register("fresh_orders", pa.Table.from_batches([fresh_orders]))
    con.register("fresh_items", pa.Table.from_batches([fresh_items]))
    con.register("gone", pa.table({"order_id": pa.array(sorted(deleted), pa.int64())}))
    old_orders = detect.parquet_glob(parent.table_dir("orders"))
    old_items = detect.parquet_glob(parent.table_dir("order_items"))
    touched = "(SELECT order_id FROM fresh_orders UNION ALL SELECT order_id FROM gone)"
    span = "order_id BETWEEN $low AND $high"
    # The detail shape has no isSeenByOwner: keep the value the list last gave us.
    orders_sql = f"""
        SELECT * FROM read_parquet('{old_orders}') WHERE order_id NOT IN {touched} AND {span}
        UNION ALL
        SELECT f.* REPLACE (coalesce(f.is_seen_by_owner, p.is_seen_by_owner) AS is_seen_by_owner)
        FROM fresh_orders f
        LEFT JOIN (SELECT order_id, is_seen_by_owner FROM read_parquet('{old_orders}')
                   WHERE {span}) p USING (order_id)
        WHERE f.{span}
        ORDER BY order_id
    """
    items_sql = f"""
        SELECT * FROM read_parquet('{old_items}') WHERE order_id NOT IN {touched} AND {span}
        UNION ALL SELECT * FROM fresh_items WHERE {span}
        ORDER BY order_id, order_item_id
    """
    spans = _id_spans(con, old_orders)
    return _stream_spans(con, orders_sql, spans, writer, "orders", schemas.ORDERS), _stream_spans(
        con, items_sql, spans, writer, "order_items", schemas.ORDER_ITEMS
    )


# Orders a merge sorts at a time. One ORDER BY over the whole table made DuckDB hold every
# column of every row at once: ~250 MB for the ~300,000 items of 100,000 orders, which put an
# incremental sync's peak RSS at ~600 MB (its parent's rows are sorted already; only the
# fresh rows need placing among them).
MERGE_SPAN_ORDERS = 20_000


def _id_spans(con: duckdb.DuckDBPyConnection, old_orders: str) -> list[tuple[int, int]]:
    """Consecutive order id ranges, each holding about MERGE_SPAN_ORDERS of the parent's and
    fresh orders; the last one open-ended (new orders sort last)."""
    low, high, count = con.execute(
        f"""SELECT min(order_id), max(order_id), count(*) FROM (
                SELECT order_id FROM read_parquet('{old_orders}')
                UNION ALL SELECT order_id FROM fresh_orders)"""
    ).fetchall()[0]
    if not count:
        return [(0, 2**62)]
    width = -(-(high - low + 1) // -(-count // MERGE_SPAN_ORDERS))
    starts = list(range(low, high + 1, width))
    return [(start, start + width - 1) for start in starts[:-1]] + [(starts[-1], 2**62)]


def _stream_spans(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    spans: list[tuple[int, int]],
    writer: SnapshotWriter,
    table: str,
    schema: pa.Schema,
) -> int:
    """`_stream` of `sql` once per id span (its $low and $high), in order, into one file."""
    out = writer.table(table, schema)
    for low, high in spans:
        for batch in con.sql(sql, params={"low": low, "high": high}).to_arrow_reader(64 * 1024):
            out.write(batch)
    return out.rows


def _stream(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    writer: SnapshotWriter,
    table: str,
    schema: pa.Schema,
    params: dict[str, Any] | None = None,
) -> int:
    """Write the result of `sql` into `table` batch by batch, cast to its explicit schema."""
    out = writer.table(table, schema)
    for batch in con.sql(sql, params=params or {}).to_arrow_reader(64 * 1024):
        out.write(batch)  # the writer orders and casts the columns to the table's schema
    return out.rows


# ---- change detection ----------------------------------------------------------------------

# In a snapshot's meta: every order_items row was flattened keeping `measureSize: {}` as '{}'
# (older versions stored NULL). A full sync sets it, incremental syncs inherit their parent's.
EMPTY_MEASURES_KEPT = "empty_measures_kept"


def record_changes(
    con: duckdb.DuckDBPyConnection,
    writer: SnapshotWriter,
    report: SyncReport,
    *,
    emit_initial: bool,
    detected_at: datetime,
    products_listed: bool = True,
    full: bool = False,
) -> None:
    parent = writer.parent
    # The snapshot to diff against: the parent, when it has orders that can be read.
    previous = parent if parent is not None and parent.has_table("orders") else None
    if previous is not None and full and _previous_unreadable(con, previous, writer, report):
        previous = None
    has_previous = previous is not None
    new_orders, new_items = writer.tmp_dir / "orders", writer.tmp_dir / "order_items"
    old = (previous.table_dir("orders"), previous.table_dir("order_items")) if previous else None
    had_history = parent is not None and parent.has_table("orders_history")
    changes: list[detect.Change] = []
    # A first sync emits nothing and its history opens a row for every order: it needs no
    # per-order states, which would hold the whole store in memory (~2 GB at 100k orders).
    if has_previous or emit_initial or had_history:
        legacy = previous is not None and not previous.meta(EMPTY_MEASURES_KEPT, False)
        changes = list(
            detect.changed_orders(
                con, old, (new_orders, new_items), old_empty_measures_as_null=legacy
            )
        )
        report.changed_orders = len(changes) if has_previous else 0
        if products_listed:
            had_products = previous is not None and previous.has_table("products")
            old_products = previous.table_dir("products") if previous and had_products else None
            changes += list(detect.changed_products(con, old_products, writer.tmp_dir / "products"))
    _write_history(con, writer, changes, detected_at)
    if not has_previous and not emit_initial:
        changes = []  # a first sync of an empty lake does not flood consumers with "created"
    first_sequence = int(writer.meta.get("last_sequence", 0)) + 1
    events = detect.event_rows(
        changes, detected_at, writer.snapshot_id, first_sequence, writer.meta.get("storefront_id")
    )
    events = _renumber_repeats(con, parent, events)
    writer.carry_over(ORDER_EVENTS_TABLE)
    if events.num_rows or not (parent and parent.has_table(ORDER_EVENTS_TABLE)):
        partition = f"date={detected_at.date().isoformat()}"
        writer.write_table(ORDER_EVENTS_TABLE, events, partition=partition)
    if events.num_rows:
        writer.meta["last_sequence"] = events.column("sequence").to_pylist()[-1]
    for event_type in events.column("event_type").to_pylist():
        report.events[event_type] = report.events.get(event_type, 0) + 1


class UnreadableSnapshotError(RuntimeError):
    """The current snapshot's files cannot be read (overwritten by another tool, say)."""


def _require_readable(con: duckdb.DuckDBPyConnection, parent: Snapshot) -> None:
    """An incremental sync carries the previous snapshot's rows: it needs them readable."""
    products = parent.table_dir("products") if parent.has_table("products") else None
    reason = detect.unreadable_reason(
        con, parent.table_dir("orders"), parent.table_dir("order_items"), products
    )
    if reason is not None:
        raise UnreadableSnapshotError(
            f"the current snapshot {parent.snapshot_id} cannot be read ({reason}): run "
            "`alter-pipeline sync --full` to rebuild the lake from the API"
        )


def _previous_unreadable(
    con: duckdb.DuckDBPyConnection, parent: Snapshot, writer: SnapshotWriter, report: SyncReport
) -> bool:
    """A reconcile must be able to rebuild a lake whose current files were overwritten (the
    diff would fail on every sync for good): it goes on as a first sync would, and says so."""
    products = parent.table_dir("products") if parent.has_table("products") else None
    reason = detect.unreadable_reason(
        con, parent.table_dir("orders"), parent.table_dir("order_items"), products
    )
    if reason is None:
        return False
    report.previous_unreadable = reason
    log.warning(
        "the previous snapshot %s cannot be read (%s): this full sync rebuilds the lake, and its "
        "change events were computed against nothing (no events for the orders it holds)",
        parent.snapshot_id,
        reason,
    )
    writer.meta["rebuilt_over_unreadable"] = parent.snapshot_id
    return True


def _renumber_repeats(
    con: duckdb.DuckDBPyConnection, parent: Snapshot | None, events: pa.Table
) -> pa.Table:
    """A change that repeats an earlier one (an order back in a status it had, then moved on
    again) hashes to an id the lake already has; dropping it would lose the event, and
    receivers de-duplicate on the id. It gets the next id of its series instead (the hash of
    `<id>:2`, `<id>:3`, ...): the same history still gives the same ids in any lake."""
    if parent is None or not parent.has_table(ORDER_EVENTS_TABLE) or events.num_rows == 0:
        return events
    events_glob = detect.parquet_glob(parent.table_dir(ORDER_EVENTS_TABLE))
    base = events.column("event_id").to_pylist()
    ids, repeats = list(base), dict.fromkeys(range(len(base)), 1)
    while repeats:
        con.register("candidate_events", pa.table({"event_id": [ids[i] for i in repeats]}))
        known = {
            row[0]
            for row in con.execute(
                f"""SELECT event_id FROM read_parquet('{events_glob}', hive_partitioning = false)
                    WHERE event_id IN (SELECT event_id FROM candidate_events)"""
            ).fetchall()
        }
        repeats = {i: n + 1 for i, n in repeats.items() if ids[i] in known}
        for i, n in repeats.items():
            ids[i] = hashlib.sha256(f"{base[i]}:{n}".encode()).hexdigest()[:32]
    column = ORDER_EVENTS.get_field_index("event_id")
    return events.set_column(column, "event_id", pa.array(ids, pa.string()))


def _write_history(
    con: duckdb.DuckDBPyConnection,
    writer: SnapshotWriter,
    changes: list[detect.Change],
    detected_at: datetime,
) -> None:
    parent = writer.parent
    old = (
        parent.table_dir("orders_history")
        if parent and parent.has_table("orders_history")
        else None
    )
    order_ids = [c.entity_id for c in changes if c.entity == "order"]
    con.register("changed_ids", pa.table({"order_id": pa.array(order_ids, pa.int64())}))
    sql = detect.history_sql(old, writer.tmp_dir / "orders", "changed_ids", "$detected_at")
    _stream(con, sql, writer, "orders_history", detect.ORDERS_HISTORY, {"detected_at": detected_at})


# ---- storefront --------------------------------------------------------------------------


class SyncCancelled(Exception):
    """The caller asked the sync to stop (e.g. Ctrl-C noticed late): nothing was committed."""


class StorefrontMismatchError(RuntimeError):
    """The credentials belong to another storefront than the lake's rows."""


def claim_storefront(
    client: SyncClient, writer: SnapshotWriter, storefront_id: int | None = None
) -> int:
    """Stamp the snapshot with the credentials' storefront (`GET /auth/check`), refusing to
    mix two storefronts' rows in one lake (a key swapped in the environment, say): the diff
    would report every order deleted and every other one created."""
    if storefront_id is None:  # the caller may have asked already (to pick the lake)
        storefront_id = client.auth_check().storefront_id
    known = writer.parent.meta("storefront_id") if writer.parent else None
    if known is not None and known != storefront_id:
        raise StorefrontMismatchError(
            f"the API credentials belong to storefront {storefront_id}, but the lake at "
            f"{writer.lake.location} holds storefront {known}: point ALTER_DATA_DIR (or this "
            "storefront's entry in storefronts.yaml) at its own lake"
        )
    writer.meta["storefront_id"] = storefront_id
    return storefront_id


# ---- entry point -----------------------------------------------------------------------------

# DuckDB's working memory while merging and diffing; beyond it, it spills under the data dir.
DUCKDB_MEMORY_LIMIT = "512MB"


def _scratch_db(lake: Lake) -> duckdb.DuckDBPyConnection:
    spill = lake.root / ".duckdb-spill"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    con.execute("SET temp_directory = ?", [str(spill)])
    return con


@contextlib.contextmanager
def _bulk_allocations() -> Iterator[None]:
    """Fewer cyclic-GC passes while every order is listed. Parsing and flattening a page
    allocates ~10,000 short-lived dicts and tuples, so the default thresholds (a young pass
    every 700 allocations, a full pass over every object of the process every 100 of those)
    ran ~5,700 passes in a 100,000-order sync, about a sixth of its CPU time. Parsed pages
    hold no reference cycles, so collecting 70 times less often frees nothing later."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _return_freed_memory() -> None:
    """Give the memory Arrow's allocator still caches back to the system before DuckDB's
    phase (the self-check, change detection, history) allocates its own. The listing's
    decoded pages are freed by then, but the allocator keeps their space for reuse: with
    DuckDB's working set on top, a 400,000-order sync peaked 15-25% above a 100,000-order
    one; given back, the listing's own peak is the sync's (issue 18, docs/performance.md)."""
    pa.default_memory_pool().release_unused()


def run_sync(
    client: SyncClient,
    lake: Lake,
    *,
    full: bool = False,
    emit_initial: bool = False,
    concurrency: int = 8,
    policy: IncrementalPolicy | None = None,
    progress: ProgressCallback | None = None,
    meta: dict[str, Any] | None = None,
    now: datetime | None = None,
    storefront_id: int | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> SyncReport:
    """Sync into a new snapshot; it is committed only if everything succeeded.
    `storefront_id`: what GET /auth/check said of the client's credentials, if already asked.
    `cancelled`: asked once more just before the commit; True raises `SyncCancelled` instead."""
    progress = progress or _no_progress
    policy = policy or IncrementalPolicy()
    started, clock = now or datetime.now(UTC), time.perf_counter()
    with lake.write() as writer, _scratch_db(lake) as con:
        claim_storefront(client, writer, storefront_id)
        incremental = not full and writer.parent is not None and writer.parent.has_table("orders")
        if incremental:
            assert writer.parent is not None
            _require_readable(con, writer.parent)
        report = SyncReport(
            snapshot_id=writer.snapshot_id,
            mode="incremental" if incremental else "full",
            started_at=started,
            duration_s=0.0,
            orders=EntityStats(),
            products=EntityStats(),
        )
        if incremental:
            try:
                write_incremental_orders(client, writer, report, con, policy, started)
            except EscalateToFullListing as escalation:
                report.escalated, report.mode, incremental = str(escalation), "full", False
        if not incremental:
            with _bulk_allocations():
                held = write_all_orders(client, writer, report, progress, concurrency)
            _return_freed_memory()
            check_full_listing(client, writer, report, con, held)
        write_all_products(client, writer, report, progress, concurrency)
        if not incremental:
            keep_rejected(client, writer, report, con)
            writer.meta[EMPTY_MEASURES_KEPT] = True
        writer.table("rejected_records", schemas.REJECTED_RECORDS).write(
            rejections_to_batch(report.rejected, started)
        )
        writer.close_tables()
        _return_freed_memory()
        record_changes(
            con, writer, report, emit_initial=emit_initial, detected_at=started, full=full
        )
        writer.meta.update(
            meta or {},
            mode=report.mode,
            api_total_orders=report.orders.api_total,
            api_total_products=report.products.api_total,
            synced_at=started.isoformat(),
        )
        if cancelled is not None and cancelled():
            raise SyncCancelled("the sync was cancelled before its commit")
    report.duration_s = time.perf_counter() - clock
    return report


def refresh_orders(
    client: SyncClient, lake: Lake, order_ids: Iterable[int], *, now: datetime | None = None
) -> SyncReport:
    """Re-read these orders now and record their changes and events (e.g. right after the rules
    job changed their status, so webhooks need not wait for the next sync)."""
    started, clock = now or datetime.now(UTC), time.perf_counter()
    with lake.write() as writer, _scratch_db(lake) as con:
        if writer.parent is None or not writer.parent.has_table("orders"):
            raise RuntimeError("the lake has no snapshot yet: run a sync first")
        report = SyncReport(
            snapshot_id=writer.snapshot_id,
            mode="refresh",
            started_at=started,
            duration_s=0.0,
            orders=EntityStats(),
            products=EntityStats(),
        )
        update_orders(client, writer, report, con, order_ids, thorough=False)
        writer.close_tables()
        record_changes(
            con, writer, report, emit_initial=False, detected_at=started, products_listed=False
        )
    report.duration_s = time.perf_counter() - clock
    return report
