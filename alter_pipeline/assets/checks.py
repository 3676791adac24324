"""Data-quality checks on the current lake snapshot. A failing check names the offending ids.

All of them run in one step (one multi-asset check over one DuckDB connection): eight steps
cost a run about 30 event-log writes and a connection each. Each check keeps its own key
(asset and name), history and result in the UI, and can still be run alone.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


Evaluate = Callable[[Snapshot, duckdb.DuckDBPyConnection], tuple[bool, dict[str, Any]]]


@dataclass(frozen=True)
class Check:
    spec: dg.AssetCheckSpec
    evaluate: Evaluate  # -> (passed, metadata)


def _offending(sql: str, what: str) -> Evaluate:
    """Passes when `sql` returns no rows; reports their count and a sample of their first
    column (the offending ids)."""

    def evaluate(snapshot: Snapshot, con: duckdb.DuckDBPyConnection) -> tuple[bool, dict[str, Any]]:
        rows = con.execute(sql).fetchall()
        metadata = {
            "offending_count": len(rows),
            "offending_ids": dg.MetadataValue.json([row[0] for row in rows[:SAMPLE]]),
            "what": what,
        }
        return not rows, metadata

    return evaluate


def _unique(table: str, key: str) -> Check:
    return Check(
        dg.AssetCheckSpec(f"{key}_unique", asset=table, description=f"{key} is unique in {table}."),
        _offending(
            f"SELECT {key} FROM {table} GROUP BY 1 HAVING count(*) > 1 ORDER BY 1",
            f"duplicate {key}",
        ),
    )


TOTALS_MATCH_ITEMS = Check(
    dg.AssetCheckSpec(
        "totals_match_items",
        asset="orders",
        description="Each order's total_value equals the sum of its items' total_price_value, "
        "and item_count equals its number of items.",
    ),
    _offending(
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
        "orders whose total or item count disagrees with their items",
    ),
)

ITEMS_REFERENCE_ORDERS = Check(
    dg.AssetCheckSpec(
        "items_reference_orders",
        asset="order_items",
        description="Every item's order_id exists in orders.",
    ),
    _offending(
        "SELECT DISTINCT i.order_id FROM order_items i ANTI JOIN orders o USING (order_id) "
        "ORDER BY 1",
        "order_id of items with no order",
    ),
)


def _row_count(table: str, total_key: str) -> Check:
    def evaluate(snapshot: Snapshot, con: duckdb.DuckDBPyConnection) -> tuple[bool, dict[str, Any]]:
        rows, expected = snapshot.rows(table), snapshot.meta(total_key)
        metadata = {"rows": rows, "api_total": expected if expected is not None else -1}
        return expected is None or rows == expected, metadata

    return Check(
        dg.AssetCheckSpec(
            "row_count_matches_api",
            asset=table,
            description=f"Rows in {table} equal the `total` the API reported during the sync.",
        ),
        evaluate,
    )


NO_REJECTED_RECORDS = Check(
    dg.AssetCheckSpec(
        "no_rejected_records",
        asset="rejected_records",
        description="No record broke the contract in the last sync (failing lists them).",
    ),
    _offending(
        "SELECT entity || ' ' || coalesce(record_id, '?') || ': ' || reason FROM rejected_records",
        "records rejected by the flattener",
    ),
)

CHECKS = (
    _unique("orders", "order_id"),
    _unique("order_items", "order_item_id"),
    _unique("products", "product_id"),
    TOTALS_MATCH_ITEMS,
    ITEMS_REFERENCE_ORDERS,
    _row_count("orders", "api_total_orders"),
    _row_count("products", "api_total_products"),
    NO_REJECTED_RECORDS,
)


@dg.multi_asset_check(
    specs=[check.spec for check in CHECKS],
    can_subset=True,
    name="lake_checks",
    description="The data-quality checks of the current lake snapshot.",
)
def lake_checks(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> Iterator[dg.AssetCheckResult]:
    snapshot = _current(context, lake)
    selected = context.selected_asset_check_keys
    with _connect(snapshot) as con:
        for check in CHECKS:
            if check.spec.key in selected:
                passed, metadata = check.evaluate(snapshot, con)
                yield dg.AssetCheckResult(
                    asset_key=check.spec.asset_key,
                    check_name=check.spec.name,
                    passed=passed,
                    metadata=metadata,
                )


asset_checks = [lake_checks]
