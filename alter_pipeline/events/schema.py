"""The event table's schema and event types: the contract between the sync (which detects
changes), the sensors, the rules job and the webhook deliverer (which consume them).

`order_events` lives in the lake as `order_events/date=YYYY-MM-DD/part-*.parquet` (hive
partitions by the UTC date of `detected_at`) and as a DuckDB view of the same name.
"""

from __future__ import annotations

import pyarrow as pa

from alter_pipeline.lake.schemas import UTC_TIMESTAMP, with_storefront

ORDER_CREATED = "order.created"
ORDER_STATUS_CHANGED = "order.status_changed"
ORDER_QUANTITY_CHANGED = "order.quantity_changed"
ORDER_ITEMS_CHANGED = "order.items_changed"
ORDER_DELETED = "order.deleted"
PRODUCT_CREATED = "product.created"
PRODUCT_UPDATED = "product.updated"
PRODUCT_DELETED = "product.deleted"

EVENT_TYPES: tuple[str, ...] = (
    ORDER_CREATED,
    ORDER_STATUS_CHANGED,
    ORDER_QUANTITY_CHANGED,
    ORDER_ITEMS_CHANGED,
    ORDER_DELETED,
    PRODUCT_CREATED,
    PRODUCT_UPDATED,
    PRODUCT_DELETED,
)

ORDER_EVENTS_TABLE = "order_events"

ORDER_EVENTS = with_storefront(
    pa.schema(
        [
            # Stable: a hash of the change itself (type, entity, before and after), so a replay
            # or a re-run of the same sync produces the same id and never a duplicate.
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("event_type", pa.string(), nullable=False),
            pa.field("order_id", pa.int64()),
            pa.field("product_id", pa.int64()),
            pa.field("detected_at", UTC_TIMESTAMP, nullable=False),
            # Increases with every event written; consumers keep it as their cursor.
            pa.field("sequence", pa.int64(), nullable=False),
            pa.field("snapshot_id", pa.string(), nullable=False),
            # JSON: {"before": {...} | null, "after": {...} | null, ...type-specific fields}
            pa.field("payload", pa.string(), nullable=False),
        ]
    )
)
