"""The dbt models as Dagster assets: same figures as the SQL they replaced, dbt tests as asset
checks, a refresh while an analyst holds the warehouse open, refresh on changed data only.

One sync and one `dbt build` (module fixture) serve most tests: dbt invocations take seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from asset_helpers import resources_for, sync_config

from alter_pipeline.analytics import DASHBOARD_MODELS, model_file
from alter_pipeline.api.client import AlterClient
from alter_pipeline.assets.analytics import analytics, dbt_resource
from alter_pipeline.assets.sync import build_alter_sync, build_warehouse_views
from alter_pipeline.emulator import EmulatorConfig, start_emulator
from alter_pipeline.lake.snapshot import Lake
from alter_pipeline.storefronts import ROOT_PREFIX
from alter_pipeline.sync import run_sync
from alter_pipeline.warehouse import WAREHOUSE_FILE, connect, ensure_views

alter_sync, warehouse_views = build_alter_sync(), build_warehouse_views()

# The dashboard SQL before the dbt project (alter_pipeline/assets/analytics.py, one storefront):
# the models must give the same rows, in the same order.
SOLD_STATUSES = ("processing", "paid", "completed")
SOLD = str(SOLD_STATUSES)
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
def built(_emulator_server, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """Two storefronts synced into their lake roots (the small store, 12, and another, 77),
    then every dbt model built while an analyst holds warehouse.duckdb open, in a data dir of
    this module (dbt's profile takes the directory from the run, never ./data)."""
    emulator = _emulator_server[0]
    emulator.reset()
    data_dir = tmp_path_factory.mktemp("analytics")
    instance = dg.DagsterInstance.ephemeral()
    second = start_emulator(EmulatorConfig(orders=25, products=12, seed=9, storefront_id=77))
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ALTER_DATA_DIR", str(data_dir))
            for store, storefront in ((emulator, 12), (second, 77)):
                with AlterClient(store.base_url, store.key, store.token) as client:
                    root = Lake(data_dir / f"{ROOT_PREFIX}{storefront}")
                    run_sync(client, root, full=True, storefront_id=storefront)
            ensure_views(data_dir)
            analyst = subprocess.Popen(
                [sys.executable, "-c", ANALYST, str(data_dir / WAREHOUSE_FILE)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert analyst.stdout.readline().strip() == "holding"
                result = refresh(emulator, data_dir, instance)
                analyst.stdin.write(f"{model_file(data_dir, 'revenue_daily')}\n")
                analyst.stdin.flush()
                seen = int(analyst.stdout.readline())
            finally:
                analyst.stdin.close()
                analyst.wait(10)
        ensure_views(data_dir)  # the models' views: the refresh left the held file alone
        # the stores as synced (other tests reset or change the shared emulator)
        yield SimpleNamespace(
            data_dir=data_dir,
            orders={12: emulator.store.orders_list(), 77: second.store.orders_list()},
            run=result,
            analyst_saw=seen,
        )
    finally:
        second.stop()


# Holds the warehouse open read-write, as the DuckDB CLI does, during the refresh; then reads
# the refreshed model in the same session.
ANALYST = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("select count(*) from orders").fetchall()
print("holding", flush=True)
model = sys.stdin.readline().strip()
sold = "select sum(orders) from read_parquet(?) where storefront_id = 12"
print(con.execute(sold, [model]).fetchall()[0][0], flush=True)
"""


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in con.execute(sql).fetchall()]


def test_dbt_models_give_the_same_rows_as_the_sql_they_replaced(built):
    assert built.run.success
    for storefront in (12, 77):
        with _one_storefront(built.data_dir / f"{ROOT_PREFIX}{storefront}") as con:
            for model in DASHBOARD_MODELS:
                expected = _rows(con, TODAYS_SQL[model])
                path = model_file(built.data_dir, model).as_posix()
                got = _rows(
                    con,
                    f"SELECT * EXCLUDE (storefront_id) FROM read_parquet('{path}') "
                    f"WHERE storefront_id = {storefront}",
                )
                assert got == expected, (storefront, model)
                assert expected or model == "abandoned_carts", f"{model} has no rows"


def _one_storefront(root: Path) -> duckdb.DuckDBPyConnection:
    """The replaced SQL's view of one storefront's lake, as it ran before."""
    con = duckdb.connect(":memory:")
    for table in ("orders", "order_items", "products"):
        pattern = (root / "lake" / table / "**" / "*.parquet").as_posix()
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}')")
    return con


def test_revenue_matches_each_storefronts_sold_orders_exactly(built):
    with connect(built.data_dir) as con:
        revenue = dict(
            _rows(con, "SELECT storefront_id, sum(revenue) FROM revenue_daily GROUP BY 1")
        )
    assert set(revenue) == {12, 77}
    for storefront, orders in built.orders.items():
        sold = [o for o in orders if o["orderStatus"] in SOLD_STATUSES]
        assert revenue[storefront] == sum(Decimal(o["totalPrice"]["value"]) for o in sold)
        assert isinstance(revenue[storefront], Decimal)


def test_dbt_tests_are_reported_as_passing_asset_checks(built):
    evaluations = built.run.get_asset_check_evaluations()
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in evaluations}
    assert checks[
        (
            "stg_orders",
            "accepted_values_stg_orders_status__shopping_cart__editable__processing__paid__completed__cancelled",
        )
    ]
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


def test_a_refresh_succeeds_while_an_analyst_holds_the_warehouse_open(built):
    assert built.run.success  # the refresh ran while the analyst held warehouse.duckdb
    sold = [o for o in built.orders[12] if o["orderStatus"] in SOLD_STATUSES]
    assert built.analyst_saw == len(sold)  # ... whose session reads the new figures
    with connect(built.data_dir) as con:  # and, once released, the warehouse has the models
        query = "SELECT sum(orders) FROM revenue_daily WHERE storefront_id = 12"
        assert con.execute(query).fetchall()[0][0] == len(sold)


def _requested(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: Any) -> tuple[set, Any]:
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    keys = {r.key.to_user_string() for r in result.results if r.true_subset.size}
    return keys, result.cursor


def test_a_sync_that_changed_data_requests_a_refresh_and_an_unchanged_one_does_not(
    emulator, tmp_path
):
    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(
        assets=[alter_sync, warehouse_views, analytics],
        resources={**resources_for(emulator, tmp_path), "dbt": dbt_resource()},
    )
    sync(emulator, tmp_path, instance, full=True)
    first, cursor = _requested(defs, instance, None)
    assert "revenue_daily" in first and "stg_orders" in first  # never built: build them
    sync(emulator, tmp_path, instance)  # incremental, nothing changed in the store
    unchanged, cursor = _requested(defs, instance, cursor)
    emulator.store.create_order(status="paid")
    sync(emulator, tmp_path, instance)
    changed, _ = _requested(defs, instance, cursor)
    assert unchanged == set()
    assert {"stg_orders", "stg_order_items", "revenue_daily", "top_products"} <= changed
    assert "stg_products" not in changed  # the products the sync re-read are the same


# ---- DataFrames, hand-offs and the report (over the module's build) ---------------------------


def test_warehouse_query_returns_the_documented_dtypes(built):
    from alter_pipeline import warehouse

    df = warehouse.query("SELECT * FROM revenue_daily ORDER BY day", data_dir=built.data_dir)
    assert str(df["orders"].dtype) == "int64"
    assert df["revenue"].dtype == object and isinstance(df["revenue"].iloc[0], Decimal)
    assert isinstance(df["day"].iloc[0], date)
    orders = warehouse.table("orders", data_dir=built.data_dir)
    assert str(orders["created_at"].dtype).startswith("datetime64[us, ")
    assert str(orders["created_at"].dt.tz) in ("UTC", "Etc/UTC")
    assert len(orders) == sum(len(o) for o in built.orders.values())


def test_warehouse_table_names_the_tables_there_are_when_one_is_unknown(built):
    from alter_pipeline import warehouse

    with pytest.raises(KeyError, match="revenue_daily"):
        warehouse.table("revenue", data_dir=built.data_dir)


def test_query_writes_a_parquet_hand_off_with_exact_decimals(built, tmp_path):
    from typer.testing import CliRunner

    from alter_pipeline.cli import app

    target = tmp_path / "revenue.parquet"
    result = CliRunner(env={"ALTER_DATA_DIR": str(built.data_dir)}).invoke(
        app, ["query", "SELECT * FROM revenue_daily", "--format", "parquet", "-o", str(target)]
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(target)
    assert table.schema.field("revenue").type.id == pa.decimal128(1).id
    assert table.num_rows > 0


def test_the_dataframes_example_runs_against_the_warehouse(built):
    example = Path(__file__).parents[2] / "examples" / "dataframes.py"
    done = subprocess.run(
        [sys.executable, str(example)],
        env={**os.environ, "ALTER_DATA_DIR": str(built.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "order value by status" in done.stdout


class _Sections(HTMLParser):
    """Each <section id=...> of the report and the SVG elements inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: dict[str, int] = {}
        self.marks: dict[str, int] = {}
        self._section: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self._section = dict(attrs).get("id")
            self.svgs[self._section] = 0
            self.marks[self._section] = 0
        elif tag == "svg" and self._section:
            self.svgs[self._section] += 1
        elif tag in ("path", "rect", "circle") and self._section:
            self.marks[self._section] += 1


def test_the_report_draws_every_chart_as_inline_svg(built):
    from alter_pipeline.report import CHARTS, report_path

    page = report_path(built.data_dir).read_text(encoding="utf-8")  # written by the refresh
    sections = _Sections()
    sections.feed(page)
    for name in CHARTS:
        if name == "abandoned_carts" and "No rows yet" in page:
            continue
        assert sections.svgs.get(name) == 1, name
        assert sections.marks[name] > 3, f"{name} draws nothing"
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org", "")


def test_the_lakes_old_dashboard_tables_are_dropped_once(emulator, tmp_path):
    from alter_pipeline.assets.analytics import _drop_legacy_tables
    from alter_pipeline.resources import LakeResource

    sync(emulator, tmp_path, dg.DagsterInstance.ephemeral(), full=True)
    lake = Lake(tmp_path)
    with lake.write() as writer:  # what the analytics asset wrote before the dbt project
        writer.write_table("revenue_daily", pa.table({"day": ["2026-12-01"], "orders": [1]}))
    before = lake.current()
    context = dg.build_asset_context()
    _drop_legacy_tables(context, LakeResource(data_dir=str(tmp_path)))
    after = lake.current()
    assert before.has_table("revenue_daily") and not after.has_table("revenue_daily")
    assert after.rows("orders") == before.rows("orders") == emulator.store.order_count()
    _drop_legacy_tables(context, LakeResource(data_dir=str(tmp_path)))
    assert lake.current().snapshot_id == after.snapshot_id  # nothing left to drop: no commit
