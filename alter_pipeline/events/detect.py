"""Detect changes between two lake snapshots and turn them into events and SCD2 history.

DuckDB finds the orders whose row or items differ (a hash per order, computed over the
Parquet files, so no snapshot is loaded into Python); only the changed orders are fetched
and classified here. Event ids hash the change itself, so the same change always gets the
same id and a re-run or replay never duplicates an event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from alter_pipeline.events import schema as ev
from alter_pipeline.lake.schemas import UTC_TIMESTAMP, with_storefront

ORDERS_HISTORY = with_storefront(
    pa.schema(
        [
            pa.field("order_id", pa.int64(), nullable=False),
            pa.field("status", pa.string()),
            pa.field("total_value", pa.decimal128(18, 4)),
            pa.field("total_currency", pa.string()),
            pa.field("item_count", pa.int32()),
            pa.field("total_quantity", pa.int64()),
            pa.field("design_name", pa.string()),
            pa.field("row_hash", pa.string(), nullable=False),
            pa.field("valid_from", UTC_TIMESTAMP, nullable=False),
            pa.field("valid_to", UTC_TIMESTAMP),
            pa.field("is_current", pa.bool_(), nullable=False),
        ]
    )
)


@dataclass(frozen=True)
class Change:
    entity: str  # "order" | "product"
    entity_id: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def parquet_glob(folder: Path) -> str:
    return (folder / "**" / "*.parquet").as_posix().replace("'", "''")


# Orders are compared in two passes so memory stays flat as the store grows: a 64-bit
# fingerprint per order (its row's hash XOR its items' hashes: constant memory per group) finds
# the few orders that differ, then only those get their full JSON state, in chunks.
CHUNK = 2_000


def _fingerprint_sql(orders: Path, items: str) -> str:
    """`items`: the relation of the order items (see `_items`)."""
    return f"""
        SELECT o.order_id AS id,
               xor(hash(to_json(o)), coalesce(i.fingerprint, 0::UBIGINT)) AS fingerprint
        FROM read_parquet('{parquet_glob(orders)}') o
        LEFT JOIN (
            SELECT order_id, bit_xor(hash(to_json(i))) AS fingerprint
            FROM {items} i GROUP BY order_id
        ) i USING (order_id)
    """


def unreadable_reason(
    con: duckdb.DuckDBPyConnection, orders: Path, items: Path, products: Path | None
) -> str | None:
    """Why the change detection cannot read these tables of a snapshot (files overwritten,
    columns missing), or None when it can: only planned, nothing is read."""
    plans = [_fingerprint_sql(orders, _items(items))]
    if products is not None:
        plans.append(_product_fingerprint_sql(products))
    try:
        for sql in plans:
            con.execute(f"SELECT * FROM ({sql}) LIMIT 0").fetchall()
    except duckdb.Error as error:
        return str(error).splitlines()[0]
    return None


def _state_sql(orders: Path, items: str, ids: str) -> str:
    """The JSON state (order columns plus items) of the orders whose ids `ids` lists."""
    return f"""
        SELECT o.order_id AS id,
               to_json({{'order': o, 'items': coalesce(i.items, [])}})::VARCHAR AS state
        FROM read_parquet('{parquet_glob(orders)}') o
        LEFT JOIN (
            SELECT order_id, list(i ORDER BY order_item_id) AS items
            FROM {items} i
            WHERE order_id IN (SELECT id FROM {ids})
            GROUP BY order_id
        ) i USING (order_id)
        WHERE o.order_id IN (SELECT id FROM {ids})
    """


def _items(items: Path) -> str:
    return f"read_parquet('{parquet_glob(items)}')"


def _items_with_empty_measures(old_items: Path, new_items: Path) -> str:
    """The old items with each NULL `measure_size` read as '{}' where the same item now
    holds '{}'. Lakes written before `{}` was kept stored `measureSize: {}` as NULL: such a
    NULL may have been `{}` all along, and reading it so keeps the first syncs after the
    upgrade from reporting every such item as edited. (A true change from null to `{}` in
    those syncs goes unreported: the old lake cannot tell the two apart.)"""
    return f"""(
        SELECT o.* REPLACE (
            CASE WHEN o.measure_size IS NULL AND n.measure_size = '{{}}' THEN '{{}}'
                 ELSE o.measure_size END AS measure_size)
        FROM read_parquet('{parquet_glob(old_items)}') o
        LEFT JOIN (
            SELECT order_id, order_item_id, measure_size
            FROM read_parquet('{parquet_glob(new_items)}')
        ) n ON n.order_id = o.order_id AND n.order_item_id = o.order_item_id
    )"""


def _product_fingerprint_sql(products: Path) -> str:
    return f"""
        SELECT product_id AS id, hash(to_json(p)) AS fingerprint
        FROM read_parquet('{parquet_glob(products)}') p
    """


def _product_state_sql(products: Path, ids: str) -> str:
    return f"""
        SELECT product_id AS id, to_json(p)::VARCHAR AS state
        FROM read_parquet('{parquet_glob(products)}') p WHERE product_id IN (SELECT id FROM {ids})
    """


_NO_ROWS = "SELECT NULL::BIGINT AS id, NULL::UBIGINT AS fingerprint WHERE false"


def _changed_ids(con: duckdb.DuckDBPyConnection, old_sql: str | None, new_sql: str) -> list[int]:
    rows = con.execute(
        f"""
        SELECT coalesce(n.id, o.id) AS id
        FROM ({old_sql or _NO_ROWS}) o FULL OUTER JOIN ({new_sql}) n USING (id)
        WHERE o.fingerprint IS DISTINCT FROM n.fingerprint
        ORDER BY id
        """
    ).fetchall()
    return [row[0] for row in rows]


def _states(con: duckdb.DuckDBPyConnection, sql: str | None) -> dict[int, str]:
    return dict(con.execute(sql).fetchall()) if sql else {}


def _diff(
    con: duckdb.DuckDBPyConnection,
    entity: str,
    ids: list[int],
    old_states: Callable[[str], str] | None,
    new_states: Callable[[str], str],
) -> Iterator[Change]:
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        con.register("diff_ids", pa.table({"id": pa.array(chunk, pa.int64())}))
        before = _states(con, old_states("diff_ids") if old_states else None)
        after = _states(con, new_states("diff_ids"))
        for entity_id in chunk:
            old, new = _load(before.get(entity_id)), _load(after.get(entity_id))
            if old != new:  # a fingerprint collision-free check of the real difference
                yield Change(entity, entity_id, old, new)


def changed_orders(
    con: duckdb.DuckDBPyConnection,
    old: tuple[Path, Path] | None,
    new: tuple[Path, Path],
    *,
    old_empty_measures_as_null: bool = False,
) -> Iterator[Change]:
    """`old` and `new`: the orders and order_items folders of two snapshots.
    `old_empty_measures_as_null`: `old` may hold NULL for `measureSize: {}` (a lake written
    before `{}` was kept), see `_items_with_empty_measures`."""
    new_orders, new_items = new
    new_relation = _items(new_items)
    old_fingerprints: str | None = None
    old_states: Callable[[str], str] | None = None
    if old is not None:
        old_orders, old_items = old
        old_relation = (
            _items_with_empty_measures(old_items, new_items)
            if old_empty_measures_as_null
            else _items(old_items)
        )
        old_fingerprints = _fingerprint_sql(old_orders, old_relation)

        def old_states(rel: str) -> str:
            return _state_sql(old_orders, old_relation, rel)

    ids = _changed_ids(con, old_fingerprints, _fingerprint_sql(new_orders, new_relation))
    yield from _diff(
        con, "order", ids, old_states, lambda rel: _state_sql(new_orders, new_relation, rel)
    )


def changed_products(
    con: duckdb.DuckDBPyConnection, old: Path | None, new: Path
) -> Iterator[Change]:
    old_fingerprints = _product_fingerprint_sql(old) if old else None
    ids = _changed_ids(con, old_fingerprints, _product_fingerprint_sql(new))
    old_states = (lambda rel: _product_state_sql(old, rel)) if old else None
    yield from _diff(con, "product", ids, old_states, lambda rel: _product_state_sql(new, rel))


def _load(state: str | None) -> dict[str, Any] | None:
    return None if state is None else json.loads(state)


# ---- classification ------------------------------------------------------------------------

# Item fields whose change is a quantity change (price and timestamp follow the quantity).
_QUANTITY_FIELDS = frozenset({"quantity", "total_price_value", "updated_at"})


def order_events(change: Change) -> list[tuple[str, dict[str, Any]]]:
    """(event_type, type-specific payload fields) for one changed order."""
    before, after = change.before, change.after
    if before is None:
        return [(ev.ORDER_CREATED, {})]
    if after is None:
        return [(ev.ORDER_DELETED, {})]
    events: list[tuple[str, dict[str, Any]]] = []
    old_status, new_status = before["order"]["status"], after["order"]["status"]
    if old_status != new_status:
        events.append((ev.ORDER_STATUS_CHANGED, {"from": old_status, "to": new_status}))
    old_items = {i["order_item_id"]: i for i in before["items"]}
    new_items = {i["order_item_id"]: i for i in after["items"]}
    quantities = [
        {"order_item_id": item_id, "from": old_items[item_id]["quantity"], "to": item["quantity"]}
        for item_id, item in new_items.items()
        if item_id in old_items and old_items[item_id]["quantity"] != item["quantity"]
    ]
    if quantities:
        events.append((ev.ORDER_QUANTITY_CHANGED, {"items": quantities}))
    added = sorted(new_items.keys() - old_items.keys())
    removed = sorted(old_items.keys() - new_items.keys())
    edited = sorted(
        item_id
        for item_id in new_items.keys() & old_items.keys()
        if _without(new_items[item_id]) != _without(old_items[item_id])
    )
    if added or removed or edited:
        events.append(
            (ev.ORDER_ITEMS_CHANGED, {"added": added, "removed": removed, "edited": edited})
        )
    return events


def _without(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _QUANTITY_FIELDS}


def product_events(change: Change) -> list[tuple[str, dict[str, Any]]]:
    if change.before is None:
        return [(ev.PRODUCT_CREATED, {})]
    if change.after is None:
        return [(ev.PRODUCT_DELETED, {})]
    fields = sorted(k for k in change.after if change.after[k] != change.before.get(k))
    return [(ev.PRODUCT_UPDATED, {"fields": fields})]


def event_id(event_type: str, change: Change, storefront_id: int | None = None) -> str:
    """Receivers de-duplicate on it, so two storefronts' identical changes (order 7 of each
    created) must differ: the storefront is part of the hash."""
    digest = hashlib.sha256()
    storefront = () if storefront_id is None else (f"storefront:{storefront_id}",)
    for part in (
        *storefront,
        event_type,
        change.entity,
        str(change.entity_id),
        _hash(change.before),
        _hash(change.after),
    ):
        digest.update(part.encode())
        digest.update(b"\x1f")
    return digest.hexdigest()[:32]


def _hash(state: dict[str, Any] | None) -> str:
    if state is None:
        return "-"
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def event_rows(
    changes: list[Change],
    detected_at: datetime,
    snapshot_id: str,
    first_sequence: int,
    storefront_id: int | None = None,
) -> pa.Table:
    rows: list[tuple[Any, ...]] = []
    for change in changes:
        classify = order_events if change.entity == "order" else product_events
        for event_type, fields in classify(change):
            payload = {"before": change.before, "after": change.after, **fields}
            rows.append(
                (
                    storefront_id,
                    event_id(event_type, change, storefront_id),
                    event_type,
                    change.entity_id if change.entity == "order" else None,
                    change.entity_id if change.entity == "product" else None,
                    detected_at,
                    first_sequence + len(rows),
                    snapshot_id,
                    json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str),
                )
            )
    columns: list[Sequence[Any]] = (
        list(zip(*rows, strict=True)) if rows else [[] for _ in ev.ORDER_EVENTS]
    )
    return pa.table(
        [pa.array(c, type=f.type) for c, f in zip(columns, ev.ORDER_EVENTS, strict=True)],
        schema=ev.ORDER_EVENTS,
    )


# ---- history -------------------------------------------------------------------------------


def history_sql(
    old_history: Path | None, new_orders: Path, changed_ids: str, detected_at: str
) -> str:
    """SCD2 rows: close the current row of every changed or deleted order, open new ones.

    `changed_ids` names a relation with one column `order_id`; `detected_at` a bound parameter.
    """
    fresh = f"""
        SELECT storefront_id, order_id, status, total_value, total_currency, item_count,
               total_quantity, design_name, md5(to_json(o)::VARCHAR) AS row_hash,
               {detected_at}::TIMESTAMPTZ AS valid_from, NULL::TIMESTAMPTZ AS valid_to,
               true AS is_current
        FROM read_parquet('{parquet_glob(new_orders)}') o
    """
    if old_history is None:
        return fresh
    return f"""
        SELECT * REPLACE (
            CASE WHEN is_current AND order_id IN (SELECT order_id FROM {changed_ids})
                 THEN {detected_at}::TIMESTAMPTZ ELSE valid_to END AS valid_to,
            is_current AND order_id NOT IN (SELECT order_id FROM {changed_ids}) AS is_current)
        FROM read_parquet('{parquet_glob(old_history)}')
        UNION ALL
        SELECT * FROM ({fresh}) WHERE order_id IN (SELECT order_id FROM {changed_ids})
    """
