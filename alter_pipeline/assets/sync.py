"""The sync multi-asset: one pass over the API writes orders, order_items, products and
rejected_records into one lake snapshot, committed atomically."""

import dataclasses
from collections.abc import Iterator
from typing import Any

import dagster as dg
import duckdb
from pydantic import Field

from alter_pipeline import sync
from alter_pipeline.api.errors import AlterAPIError
from alter_pipeline.assets.groups import SYNC_GROUP
from alter_pipeline.assets.interrupts import latched_interrupts
from alter_pipeline.assets.metadata import content_version, table_metadata
from alter_pipeline.assets.scope import scope_of
from alter_pipeline.events.detect import ORDERS_HISTORY
from alter_pipeline.events.schema import ORDER_EVENTS
from alter_pipeline.lake import Snapshot, schemas
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.warehouse import ensure_views, lake_tables

OWNERS = ["team:data-engineering"]
SYNC_TABLES = {
    "order_events": (
        "Changes detected between syncs (append-only, partitioned by date).",
        ORDER_EVENTS,
    ),
    "orders_history": ("SCD2 history of every order's state.", ORDERS_HISTORY),
    "orders": ("One row per customer order (list shape of GET /customer-orders).", schemas.ORDERS),
    "order_items": ("One row per productItems entry of an order.", schemas.ORDER_ITEMS),
    "products": ("Storefront products (GET /products).", schemas.PRODUCTS),
    "rejected_records": (
        "Records of the last sync that broke the contract, with the reason and raw JSON.",
        schemas.REJECTED_RECORDS,
    ),
}
# Tables the dbt models read: their materializations carry a content data version.
VERSIONED_TABLES = frozenset({"orders", "order_items", "products"})


class SyncConfig(dg.Config):
    full: bool = Field(
        default=False, description="Reconcile: list every order (the first sync always does)."
    )
    emit_initial: bool = Field(
        default=False, description="On the first sync, emit order.created for every order."
    )
    recent_days: int = Field(default=7, description="Open orders active this recently: re-read.")
    rotation_syncs: int = Field(
        default=48, description="Older open orders are each re-read once per this many syncs."
    )
    concurrency: int | None = None


def build_alter_sync(
    partitions_def: dg.PartitionsDefinition | None = None,
    progress: sync.ProgressCallback | None = None,
) -> dg.AssetsDefinition:
    """The sync multi-asset; partitioned by storefront when there are several. `progress`
    hears each page as the run's log does (the CLI builds its definitions with its bar)."""

    @dg.multi_asset(
        name="alter_sync",
        specs=[
            dg.AssetSpec(
                table,
                description=description,
                group_name=SYNC_GROUP,
                owners=OWNERS,
                kinds={"parquet"},
                tags={"layer": "raw"},
                partitions_def=partitions_def,
            )
            for table, (description, _) in SYNC_TABLES.items()
        ],
        can_subset=False,
    )
    def alter_sync(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        alter_api: AlterApiResource,
        lake: LakeResource,
    ) -> Iterator[dg.MaterializeResult]:
        """Page through every order and product and commit a new lake snapshot."""
        yield from _sync(context, config, alter_api, lake, progress)

    return alter_sync


def _sync(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    alter_api: AlterApiResource,
    lake: LakeResource,
    progress: sync.ProgressCallback | None = None,
) -> Iterator[dg.MaterializeResult]:
    pages_logged: dict[str, int] = {}

    def log_progress(entity: str, done: int, total: int, rows: int) -> None:
        step = max(1, total // 10)
        if done == total or done - pages_logged.get(entity, 0) >= step:
            pages_logged[entity] = done
            context.log.info(f"{entity}: {done}/{total} pages, {rows} rows")
        if progress is not None:
            progress(entity, done, total, rows)

    scope = scope_of(context, lake, alter_api)
    try:
        with latched_interrupts() as interrupted, scope.client() as client:
            storefront_lake, storefront_id = scope.lake_for_sync(client)
            report = sync.run_sync(
                client,
                storefront_lake,
                full=config.full,
                emit_initial=config.emit_initial,
                policy=sync.IncrementalPolicy(config.recent_days, config.rotation_syncs),
                concurrency=config.concurrency or alter_api.concurrency,
                progress=log_progress,
                meta={"run_id": context.run.run_id, "storefront_name": scope.name},
                storefront_id=storefront_id,
                cancelled=interrupted,
            )
            stats = client.stats.snapshot()
    except sync.SyncCancelled:
        # Ctrl-C whose exception Python dropped (see interrupts.py): end as Dagster would have.
        raise dg.DagsterExecutionInterruptedError() from None
    except (
        AlterAPIError,
        sync.StorefrontMismatchError,
        sync.ListingMismatchError,
        sync.UnreadableSnapshotError,
    ) as error:
        # One line naming the storefront: the partition's failure in the UI says whose and why.
        raise dg.Failure(description=f"{scope.label}: {error}") from None
    if report.previous_unreadable:
        context.log.warning(
            f"the previous snapshot could not be read ({report.previous_unreadable}): the lake "
            "was rebuilt, and this sync's change events were computed against nothing"
        )
    snapshot = storefront_lake.get(report.snapshot_id)
    assert snapshot is not None
    run_figures = {
        "storefront_id": snapshot.meta("storefront_id"),
        "sync_duration_s": round(report.duration_s, 3),
        "rows_per_second": round(report.rows_per_second, 1),
        "api_requests": stats.requests,
        "api_retries": stats.retries,
        # The listing's adaptive concurrency (api/paging/concurrency.py): 429s it was answered,
        # requests in flight it settled on, and its pace in requests/s (0: none was needed).
        "api_throttled": stats.throttled,
        "api_concurrency": stats.window or 0,
        "api_pace": stats.pace or 0.0,
        "pages": report.orders.pages + report.products.pages,
        "mode": report.mode,
        "events": dg.MetadataValue.json(report.events),
        "orders_reread": report.reread,
        "orders_new": report.new_orders,
        "orders_deleted": report.deleted,
        "orders_changed": report.changed_orders,
        # The self-check against the API's totals (alter_pipeline/selfcheck.py).
        "self_check": dg.MetadataValue.json(
            dataclasses.asdict(report.check) | {"requests": report.check.requests}
        ),
        "self_check_requests": report.check.requests,
        "orders_deletions_found": report.check.deletions_found,
        "orders_ghosts_dropped": report.check.ghosts_dropped,
        "orders_status_changes_found": report.check.status_changes_found,
        "escalated_to_full": report.escalated,
    }
    if report.previous_unreadable:
        run_figures["previous_snapshot_unreadable"] = report.previous_unreadable
    with duckdb.connect() as con:  # one for every table (see table_metadata)
        results = [
            _table_result(con, snapshot, table, report, run_figures) for table in SYNC_TABLES
        ]
    yield from results


def _table_result(
    con: duckdb.DuckDBPyConnection,
    snapshot: Snapshot,
    table: str,
    report: sync.SyncReport,
    run_figures: dict[str, Any],
) -> dg.MaterializeResult:
    metadata = table_metadata(con, snapshot, table, SYNC_TABLES[table][1]) | run_figures
    if table == "orders":
        metadata["api_total"] = report.orders.api_total
    if table == "products":
        metadata["api_total"] = report.products.api_total
    version = content_version(con, snapshot, table) if table in VERSIONED_TABLES else None
    return dg.MaterializeResult(asset_key=table, metadata=metadata, data_version=version)


def build_warehouse_views(
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetsDefinition:
    @dg.asset(
        name="warehouse_views",
        deps=list(SYNC_TABLES),
        group_name=SYNC_GROUP,
        owners=OWNERS,
        kinds={"duckdb"},
        partitions_def=partitions_def,
        description="DuckDB views of every lake table (of every storefront) in "
        "$ALTER_DATA_DIR/warehouse.duckdb.",
    )
    def warehouse_views(lake: LakeResource) -> dg.MaterializeResult:
        result = ensure_views(lake.path())
        return dg.MaterializeResult(
            metadata={
                "views": dg.MetadataValue.json(lake_tables(lake.path())),
                "created_or_replaced": dg.MetadataValue.json(result.created),
                "skipped_reason": result.skipped_reason or "",
            }
        )

    return warehouse_views
