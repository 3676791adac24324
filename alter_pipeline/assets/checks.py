"""Data-quality checks on the current lake snapshot. A failing check names the offending ids."""

from collections.abc import Sequence
from typing import Any

import dagster as dg
import duckdb

from alter_pipeline.assets.scope import scope_of
from alter_pipeline.lake import Snapshot
from alter_pipeline.resources import LakeResource

SAMPLE = 20


def _connect(snapshot: Snapshot) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    for table in snapshot.manifest["tables"]:
        pattern = (snapshot.table_dir(table) / "**" / "*.parquet").as_posix().replace("'", "''")
        con.execute(f"CREATE VIEW \"{table}\" AS SELECT * FROM read_parquet('{pattern}')")
    return con


def _current(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> Snapshot:
    """The current snapshot of the run's storefront."""
    scope = scope_of(context, lake)
    snapshot = scope.lake().current()
    if snapshot is None:
        raise dg.Failure(f"{scope.label} has no lake snapshot yet: run sync_job first")
    return snapshot


def _offenders(snapshot: Snapshot, sql: str) -> tuple[int, list[Any]]:
    """Count and a sample of the first column of `sql`'s rows (the offending ids)."""
    with _connect(snapshot) as con:
        rows = con.execute(sql).fetchall()
    return len(rows), [row[0] for row in rows[:SAMPLE]]


def _result(count: int, sample: Sequence[Any], what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=count == 0,
        metadata={
            "offending_count": count,
            "offending_ids": dg.MetadataValue.json(list(sample)),
            "what": what,
        },
    )


def _unique_check(table: str, key: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=table, name=f"{key}_unique", description=f"{key} is unique in {table}.")
    def check(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        count, sample = _offenders(
            _current(context, lake),
            f"SELECT {key} FROM {table} GROUP BY 1 HAVING count(*) > 1 ORDER BY 1",
        )
        return _result(count, sample, f"duplicate {key}")

    return check


@dg.asset_check(
    asset="orders",
    description="Each order's total_value equals the sum of its items' total_price_value, "
    "and item_count equals its number of items.",
)
def totals_match_items(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    count, sample = _offenders(
        _current(context, lake),
        """
        SELECT o.order_id
        FROM orders o
        LEFT JOIN (
            SELECT order_id, sum(total_price_value) AS items_value, count(*) AS items
            FROM order_items GROUP BY 1
        ) i USING (order_id)
        WHERE o.total_value IS DISTINCT FROM coalesce(i.items_value, 0)
           OR o.item_count <> coalesce(i.items, 0)
        ORDER BY 1
        """,
    )
    return _result(count, sample, "orders whose total or item count disagrees with their items")


@dg.asset_check(asset="order_items", description="Every item's order_id exists in orders.")
def items_reference_orders(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    count, sample = _offenders(
        _current(context, lake),
        "SELECT DISTINCT i.order_id FROM order_items i ANTI JOIN orders o USING (order_id) "
        "ORDER BY 1",
    )
    return _result(count, sample, "order_id of items with no order")


def _row_count_check(table: str, total_key: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table,
        name="row_count_matches_api",
        description=f"Rows in {table} equal the `total` the API reported during the sync.",
    )
    def check(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        snapshot = _current(context, lake)
        rows, expected = snapshot.rows(table), snapshot.meta(total_key)
        return dg.AssetCheckResult(
            passed=expected is None or rows == expected,
            metadata={"rows": rows, "api_total": expected if expected is not None else -1},
        )

    return check


@dg.asset_check(
    asset="rejected_records",
    description="No record broke the contract in the last sync (failing lists them).",
)
def no_rejected_records(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> dg.AssetCheckResult:
    count, sample = _offenders(
        _current(context, lake),
        "SELECT entity || ' ' || coalesce(record_id, '?') || ': ' || reason FROM rejected_records",
    )
    return _result(count, sample, "records rejected by the flattener")


asset_checks = [
    _unique_check("orders", "order_id"),
    _unique_check("order_items", "order_item_id"),
    _unique_check("products", "product_id"),
    totals_match_items,
    items_reference_orders,
    _row_count_check("orders", "api_total_orders"),
    _row_count_check("products", "api_total_products"),
    no_rejected_records,
]
