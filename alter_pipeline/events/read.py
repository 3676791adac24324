"""Reading `order_events` back from a snapshot (what the rules sensor watches)."""

from __future__ import annotations

import duckdb

from alter_pipeline.events.schema import ORDER_EVENTS_TABLE
from alter_pipeline.lake.snapshot import Snapshot


def latest_order_event(snapshot: Snapshot | None) -> int:
    """The highest `sequence` of an order event in the lake (0 when there is none)."""
    if snapshot is None or not snapshot.has_table(ORDER_EVENTS_TABLE):
        return 0
    files = (snapshot.table_dir(ORDER_EVENTS_TABLE) / "**" / "*.parquet").as_posix()
    with duckdb.connect(":memory:") as con:
        row = con.execute(
            "SELECT max(sequence) FROM read_parquet($files, hive_partitioning = true) "
            "WHERE order_id IS NOT NULL",
            {"files": files},
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0
