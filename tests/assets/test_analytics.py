"""The dbt models as Dagster assets: same figures as the SQL they replaced, dbt tests as asset
checks, a refresh while an analyst holds the warehouse open, refresh on changed data only.

One sync and one `dbt build` (module fixture) serve most tests: dbt invocations take seconds.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import resources_for, sync_config

from alter_pipeline.analytics import DASHBOARD_MODELS, model_file
from alter_pipeline.assets.analytics import analytics, dbt_resource
from alter_pipeline.assets.sync import alter_sync, warehouse_views
from alter_pipeline.warehouse import WAREHOUSE_FILE, connect

# The dashboard SQL before the dbt project (alter_pipeline/assets/analytics.py, one storefront):
# the models must give the same rows, in the same order.
SOLD = "('processing', 'paid', 'completed')"
SOLD_ITEMS = f"""SELECT i.* FROM order_items i JOIN orders o USING (order_id)
                 WHERE o.status IN {SOLD}"""


def _top(keys: str, label: str) -> str:
    return f"""SELECT {keys}, sum(quantity) AS quantity, sum(total_price_value) AS revenue,
                      total_price_currency AS currency, count(DISTINCT order_id) AS orders
               FROM ({SOLD_ITEMS}) GROUP BY ALL ORDER BY revenue DESC, quantity DESC, {label}"""


TODAYS_SQL = {
    "revenue_daily": f"""
        SELECT CAST(created_at AT TIME ZONE 'UTC' AS DATE) AS day, total_currency AS currency,
               count(*) AS orders, sum(total_value) AS revenue, sum(total_quantity) AS quantity
        FROM orders WHERE status IN {SOLD} GROUP BY ALL ORDER BY day, currency""",
    "order_status_funnel": """
        SELECT status, count(*) AS orders, sum(total_value) AS value,
               round(count(*) * 100.0 / sum(count(*)) OVER (), 2) AS share_pct
        FROM orders GROUP BY status
        ORDER BY array_position(['shopping_cart','editable','processing','paid','completed',
                                 'cancelled'], status)""",
    "top_products": f"""
        SELECT t.model3d_id AS product_id, p.name AS product_name, t.quantity, t.revenue,
               t.currency, t.orders
        FROM ({_top("model3d_id", "model3d_id")}) t
        LEFT JOIN products p ON p.product_id = t.model3d_id
        ORDER BY t.revenue DESC, t.quantity DESC, t.model3d_id""",
    "top_variants": _top(
        "variant_id, any_value(size_name_en) AS size, any_value(material_name_en) AS material,"
        " any_value(print_type_name_en) AS print_type, any_value(color_name_en) AS color",
        "variant_id",
    ),
    "top_materials": _top("material_id, material_name_en AS material", "material_id"),
    "top_print_types": _top("print_type_id, print_type_name_en AS print_type", "print_type_id"),
    "abandoned_carts": """
        SELECT order_id, status, design_name, created_at, total_value, total_currency,
               date_diff('day', created_at, now()) AS age_days
        FROM orders WHERE status IN ('shopping_cart', 'editable')
          AND created_at < now() - to_days(30)
        ORDER BY total_value DESC, order_id""",
}


def refresh(emulator: Any, data_dir: Path, instance: dg.DagsterInstance, **select: Any):
    return dg.materialize(
        [analytics],
        resources={**resources_for(emulator, data_dir), "dbt": dbt_resource()},
        instance=instance,
        raise_on_error=False,
        **select,
    )


def sync(emulator: Any, data_dir: Path, instance: dg.DagsterInstance, **config: Any):
    result = dg.materialize(
        [alter_sync, warehouse_views],
        resources=resources_for(emulator, data_dir),
        run_config=sync_config(**config),
        instance=instance,
    )
    assert result.success
    return result


@pytest.fixture(scope="module")
def built(_emulator_server, tmp_path_factory) -> SimpleNamespace:
    """The small store synced and every dbt model built, in a data dir of this module (dbt's
    profile takes the directory from the run, never ./data)."""
    emulator = _emulator_server[0]
    emulator.reset()
    data_dir = tmp_path_factory.mktemp("analytics")
    instance = dg.DagsterInstance.ephemeral()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ALTER_DATA_DIR", str(data_dir))
        sync(emulator, data_dir, instance, full=True)
        result = refresh(emulator, data_dir, instance)
    return SimpleNamespace(emulator=emulator, data_dir=data_dir, instance=instance, run=result)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in con.execute(sql).fetchall()]


def test_dbt_models_give_the_same_rows_as_the_sql_they_replaced(built):
    assert built.run.success
    with connect(built.data_dir) as con:
        for model in DASHBOARD_MODELS:
            expected = _rows(con, TODAYS_SQL[model])
            path = model_file(built.data_dir, model).as_posix()
            got = _rows(con, f"SELECT * EXCLUDE (storefront_id) FROM read_parquet('{path}')")
            assert got == expected, model
            assert expected or model == "abandoned_carts", f"{model} has no rows to compare"


def test_revenue_matches_the_emulators_sold_orders_exactly(built):
    sold = [
        o
        for o in built.emulator.store.orders_list()
        if o["orderStatus"] in ("processing", "paid", "completed")
    ]
    with connect(built.data_dir) as con:
        revenue = con.execute("SELECT sum(revenue) FROM revenue_daily").fetchone()[0]
        storefronts = _rows(con, "SELECT DISTINCT storefront_id FROM revenue_daily")
    assert revenue == sum(Decimal(o["totalPrice"]["value"]) for o in sold)
    assert isinstance(revenue, Decimal)
    assert storefronts == [(12,)]


def test_dbt_tests_are_reported_as_passing_asset_checks(built):
    evaluations = built.run.get_asset_check_evaluations()
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in evaluations}
    assert checks[
        (
            "stg_orders",
            "accepted_values_stg_orders_status__shopping_cart__editable__processing__paid__completed__cancelled",
        )
    ]  # noqa: E501
    assert any(name.startswith("relationships_stg_order_items") for _, name in checks)
    assert len(checks) >= 20
    assert all(checks.values()), [k for k, ok in checks.items() if not ok]


def test_a_failing_dbt_test_is_a_failed_asset_check(emulator, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    sync(emulator, tmp_path, instance, full=True)
    orders = tmp_path / "lake" / "orders"
    first = pq.read_table(sorted(orders.rglob("*.parquet"))[0]).slice(0, 1)
    pq.write_table(first, orders / "duplicate.parquet")  # the same order twice
    result = refresh(emulator, tmp_path, instance, selection=["stg_orders"])
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert any(name.startswith("unique_stg_orders") for name in failed), failed
    assert not result.success  # an error-severity test stops the models downstream


ANALYST = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write, as the DuckDB CLI opens it
print(con.execute("select sum(orders) from revenue_daily").fetchone()[0], flush=True)
sys.stdin.readline()
print(con.execute("select sum(orders) from revenue_daily").fetchone()[0], flush=True)
"""


def test_a_refresh_succeeds_while_an_analyst_holds_the_warehouse_open(built, emulator):
    analyst = subprocess.Popen(
        [sys.executable, "-c", ANALYST, str(built.data_dir / WAREHOUSE_FILE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        before = int(analyst.stdout.readline())
        emulator.store.create_order(status="paid")
        sync(emulator, built.data_dir, built.instance, full=True)
        assert refresh(emulator, built.data_dir, built.instance).success
        analyst.stdin.write("\n")
        analyst.stdin.flush()
        assert int(analyst.stdout.readline()) == before + 1  # same session, new figures
    finally:
        analyst.stdin.close()
        analyst.wait(10)
