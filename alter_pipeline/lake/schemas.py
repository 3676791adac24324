"""Explicit Arrow schemas of the lake's tables.

Every table has a fixed schema so that an empty page, a page of nulls or a new field from the
API never changes a column's type. Fields the schema does not know land in `extra` (JSON text).
"""

from __future__ import annotations

import pyarrow as pa

MONEY = pa.decimal128(18, 4)
MEASURE = pa.decimal128(18, 6)
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

# Every lake row names its storefront (`storefrontId` of GET /auth/check), so one query can
# span the lakes of several storefronts. API pages do not carry it: the flattener emits the
# `API_*` schemas and the snapshot writer adds the column (see lake.snapshot.TableWriter).
STOREFRONT_ID = pa.field("storefront_id", pa.int64())


def with_storefront(schema: pa.Schema) -> pa.Schema:
    if STOREFRONT_ID.name in schema.names:
        return schema
    return pa.schema([STOREFRONT_ID, *schema])


API_ORDERS = pa.schema(
    [
        pa.field("order_id", pa.int64(), nullable=False),
        pa.field("customizer_id", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("is_seen_by_owner", pa.bool_()),
        pa.field("created_at", UTC_TIMESTAMP),
        pa.field("customizer_order_url", pa.string()),
        pa.field("design_name", pa.string()),
        pa.field("product_group_id", pa.int64()),
        pa.field("product_group_name_en", pa.string()),
        pa.field("product_group_name_pl", pa.string()),
        pa.field("total_value", MONEY),
        pa.field("total_currency", pa.string()),
        pa.field("item_count", pa.int32()),
        pa.field("total_quantity", pa.int64()),
        pa.field("extra", pa.string()),
    ]
)

API_ORDER_ITEMS = pa.schema(
    [
        pa.field("order_item_id", pa.int64(), nullable=False),
        pa.field("order_id", pa.int64(), nullable=False),
        pa.field("model3d_id", pa.int64()),
        pa.field("size_id", pa.int64()),
        pa.field("size_name_en", pa.string()),
        pa.field("size_name_pl", pa.string()),
        pa.field("measure_size", pa.string()),
        pa.field("material_id", pa.int64()),
        pa.field("material_name_en", pa.string()),
        pa.field("material_name_pl", pa.string()),
        pa.field("print_type_id", pa.int64()),
        pa.field("print_type_name_en", pa.string()),
        pa.field("print_type_name_pl", pa.string()),
        pa.field("color_id", pa.int64()),
        pa.field("color_name_en", pa.string()),
        pa.field("color_name_pl", pa.string()),
        pa.field("color_hex", pa.string()),
        pa.field("variant_id", pa.int64()),
        pa.field("variant_metadata", pa.string()),
        pa.field("min_order_quantity", pa.int64()),
        pa.field("processing_time", pa.int64()),
        pa.field("stock_quantity", pa.int64()),
        pa.field("volume", MEASURE),
        pa.field("weight", MEASURE),
        pa.field("unit_price_value", MONEY),
        pa.field("unit_price_currency", pa.string()),
        pa.field("total_price_value", MONEY),
        pa.field("total_price_currency", pa.string()),
        pa.field("quantity", pa.int64()),
        pa.field("updated_at", UTC_TIMESTAMP),
        pa.field("extra", pa.string()),
    ]
)

API_PRODUCTS = pa.schema(
    [
        pa.field("product_id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("created_at", UTC_TIMESTAMP),
        pa.field("base_product_id", pa.int64()),
        pa.field("image_big", pa.string()),
        pa.field("image_medium", pa.string()),
        pa.field("image_small", pa.string()),
        pa.field("storefront_product_id", pa.int64()),
        pa.field("share_access", pa.string()),
        pa.field("is_customizer", pa.bool_()),
        pa.field("user_design_id", pa.int64()),
        pa.field("embeddable_viewer", pa.bool_()),
        pa.field("embeddable_configurator", pa.bool_()),
        pa.field("embeddable_customizer", pa.bool_()),
        pa.field("extra", pa.string()),
    ]
)

# A record that broke the contract: kept with its reason, never written to the main tables.
API_REJECTED_RECORDS = pa.schema(
    [
        pa.field("entity", pa.string(), nullable=False),
        pa.field("record_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw_json", pa.string(), nullable=False),
        pa.field("detected_at", UTC_TIMESTAMP, nullable=False),
    ]
)

ORDERS = with_storefront(API_ORDERS)
ORDER_ITEMS = with_storefront(API_ORDER_ITEMS)
PRODUCTS = with_storefront(API_PRODUCTS)
REJECTED_RECORDS = with_storefront(API_REJECTED_RECORDS)

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "orders": ORDERS,
    "order_items": ORDER_ITEMS,
    "products": PRODUCTS,
    "rejected_records": REJECTED_RECORDS,
}


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
