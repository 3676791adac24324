"""Dashboard tables built with DuckDB from the synced tables, committed as one lake snapshot."""

import dagster as dg

from alter_pipeline.assets.checks import _connect
from alter_pipeline.assets.metadata import markdown_preview
from alter_pipeline.assets.scope import scope_of
from alter_pipeline.lake.schemas import with_storefront
from alter_pipeline.resources import LakeResource
from alter_pipeline.warehouse import ensure_views

ANALYTICS_GROUP = "analytics"
# Orders that passed checkout count as revenue; carts and cancelled orders do not.
SOLD = "('processing', 'paid', 'completed')"

_SOLD_ITEMS = f"""
    SELECT i.*, o.created_at AS order_created_at
    FROM order_items i JOIN orders o USING (order_id)
    WHERE o.status IN {SOLD}
"""


def _top(key_columns: str, label: str) -> str:
    return f"""
        SELECT {key_columns}, sum(quantity) AS quantity, sum(total_price_value) AS revenue,
               total_price_currency AS currency, count(DISTINCT order_id) AS orders
        FROM ({_SOLD_ITEMS})
        GROUP BY ALL
        ORDER BY revenue DESC, quantity DESC, {label}
    """


ANALYTICS_SQL: dict[str, tuple[str, list[str], str]] = {
    "revenue_daily": (
        "Revenue per UTC day and currency from orders that passed checkout.",
        ["orders"],
        f"""
        SELECT CAST(created_at AT TIME ZONE 'UTC' AS DATE) AS day, total_currency AS currency,
               count(*) AS orders, sum(total_value) AS revenue, sum(total_quantity) AS quantity
        FROM orders WHERE status IN {SOLD}
        GROUP BY ALL ORDER BY day, currency
        """,
    ),
    "order_status_funnel": (
        "Orders and value per status, in funnel order.",
        ["orders"],
        """
        SELECT status, count(*) AS orders, sum(total_value) AS value,
               round(count(*) * 100.0 / sum(count(*)) OVER (), 2) AS share_pct
        FROM orders GROUP BY status
        ORDER BY array_position(['shopping_cart','editable','processing','paid','completed',
                                 'cancelled'], status)
        """,
    ),
    "top_products": (
        "Products (the items' 3D model, named from products) by revenue and quantity.",
        ["order_items", "orders", "products"],
        f"""
        SELECT t.model3d_id AS product_id, p.name AS product_name, t.quantity, t.revenue,
               t.currency, t.orders
        FROM ({_top("model3d_id", "model3d_id")}) t
        LEFT JOIN products p ON p.product_id = t.model3d_id
        ORDER BY t.revenue DESC, t.quantity DESC, t.model3d_id
        """,
    ),
    "top_variants": (
        "Variants (size, material, print type, colour) by revenue and quantity.",
        ["order_items", "orders"],
        _top(
            "variant_id, any_value(size_name_en) AS size, any_value(material_name_en) AS material,"
            " any_value(print_type_name_en) AS print_type, any_value(color_name_en) AS color",
            "variant_id",
        ),
    ),
    "top_materials": (
        "Materials by revenue and quantity.",
        ["order_items", "orders"],
        _top("material_id, material_name_en AS material", "material_id"),
    ),
    "top_print_types": (
        "Print types by revenue and quantity.",
        ["order_items", "orders"],
        _top("print_type_id, print_type_name_en AS print_type", "print_type_id"),
    ),
    "abandoned_carts": (
        "Orders still in shopping_cart/editable created more than N days ago, with value at stake.",
        ["orders"],
        """
        SELECT order_id, status, design_name, created_at, total_value, total_currency,
               date_diff('day', created_at, now()) AS age_days
        FROM orders
        WHERE status IN ('shopping_cart', 'editable')
          AND created_at < now() - to_days(CAST($abandoned_days AS INTEGER))
        ORDER BY total_value DESC, order_id
        """,
    ),
}


class AnalyticsConfig(dg.Config):
    abandoned_days: int = 30


def build_analytics(partitions_def: dg.PartitionsDefinition | None = None):
    @dg.multi_asset(
        name="analytics",
        specs=[
            dg.AssetSpec(
                name,
                description=description,
                deps=deps,
                group_name=ANALYTICS_GROUP,
                owners=["team:analytics"],
                kinds={"duckdb", "parquet"},
                partitions_def=partitions_def,
            )
            for name, (description, deps, _) in ANALYTICS_SQL.items()
        ],
        can_subset=False,
    )
    def analytics(context: dg.AssetExecutionContext, config: AnalyticsConfig, lake: LakeResource):
        """Compute every dashboard table from the current snapshot and commit them together."""
        yield from _analytics(context, config, lake)

    return analytics


def _analytics(context: dg.AssetExecutionContext, config: AnalyticsConfig, lake: LakeResource):
    results = []
    scope = scope_of(context, lake)
    with scope.lake().write() as writer:
        if writer.parent is None:
            raise dg.Failure(f"{scope.label} has no lake snapshot yet: run sync_job first")
        with _connect(writer.parent) as con:
            for name, (_, _, sql) in ANALYTICS_SQL.items():
                params = {"abandoned_days": config.abandoned_days} if "$abandoned" in sql else {}
                table = con.sql(sql, params=params).to_arrow_table()
                # Rows name their storefront, so the views over every storefront stay apart.
                writer.write_table(name, table, schema=with_storefront(table.schema))
                results.append((name, table))
    ensure_views(lake.path())
    for name, table in results:
        context.log.info(f"{name}: {table.num_rows} rows")
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "dagster/row_count": table.num_rows,
                "preview": dg.MetadataValue.md(markdown_preview(table)),
            },
        )


analytics = build_analytics()
