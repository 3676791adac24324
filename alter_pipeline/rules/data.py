"""What the rules read from the lake: one snapshot's orders and items, and its data version.

Rules are evaluated over the files of one snapshot, not through the `lake` symlink, so a sync
committing mid-evaluation cannot mix two snapshots in one run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import duckdb

from alter_pipeline.lake import Snapshot, schemas
from alter_pipeline.rules.evaluate import OrderFacts

RULE_TABLES = ("orders", "order_items")


class NoDataError(RuntimeError):
    """The lake has no snapshot with orders yet."""


def _glob(snapshot: Snapshot, table: str) -> str:
    return (snapshot.table_dir(table) / "**" / "*.parquet").as_posix().replace("'", "''")


def snapshot_connection(snapshot: Snapshot | None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with `orders` and `order_items` views over this snapshot's files."""
    if snapshot is None or not snapshot.has_table("orders"):
        raise NoDataError("the lake has no orders yet: run `alter-pipeline sync` first")
    con = duckdb.connect(":memory:")
    for table in RULE_TABLES:
        if snapshot.has_table(table):
            source = f"read_parquet('{_glob(snapshot, table)}')"
        else:  # an empty table of the right shape keeps every query valid
            con.register(f"_{table}_empty", schemas.TABLE_SCHEMAS[table].empty_table())
            source = f"_{table}_empty"
        con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {source}')
    return con


def data_version(snapshot: Snapshot) -> str:
    """Identifies the synced orders and items the rules saw.

    Parquet file names carry the id of the snapshot that wrote them and survive carry-over, so
    a snapshot that only appended audit rows has the same data version as its parent: a re-run
    over the same data hits the same ledger keys.
    """
    digest = hashlib.sha256()
    for table in RULE_TABLES:
        folder = snapshot.table_dir(table)
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
        digest.update(f"{table}:{','.join(names)}\n".encode())
    return digest.hexdigest()[:16]


def load_facts(con: duckdb.DuckDBPyConnection, order_ids: Iterable[int]) -> dict[int, OrderFacts]:
    """Orders (with their items) as the warehouse holds them, by id; absent ids are left out."""
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    orders = con.sql(
        "SELECT * FROM orders WHERE order_id IN (SELECT unnest($ids)) ORDER BY order_id",
        params={"ids": ids},
    ).to_arrow_table()
    items = con.sql(
        "SELECT * FROM order_items WHERE order_id IN (SELECT unnest($ids)) "
        "ORDER BY order_id, order_item_id",
        params={"ids": ids},
    ).to_arrow_table()
    by_order: dict[int, list[dict]] = {}
    for item in items.to_pylist():
        by_order.setdefault(item["order_id"], []).append(item)
    return {
        row["order_id"]: OrderFacts(row, tuple(by_order.get(row["order_id"], [])))
        for row in orders.to_pylist()
    }


def synced_columns(
    con: duckdb.DuckDBPyConnection, order_ids: Iterable[int], columns: Iterable[str]
) -> dict[int, dict[str, object]]:
    """`columns` of these orders as the snapshot holds them (names from the orders schema)."""
    names = [c for c in columns if c in schemas.ORDERS.names]  # whitelisted: safe to quote
    ids = sorted(set(order_ids))
    if not ids or not names:
        return {}
    select = ", ".join(f'"{name}"' for name in names)
    rows = con.execute(
        f'SELECT "order_id", {select} FROM orders WHERE "order_id" IN (SELECT unnest($ids))',
        {"ids": ids},
    ).fetchall()
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in rows}
