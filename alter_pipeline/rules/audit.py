"""The `status_transitions` audit table: one row per transition a rules run applied, skipped,
failed or (dry run) would have applied.

Appended through a lake snapshot: the run's rows go to a new Parquet file in the hive partition
of their UTC date (`status_transitions/date=YYYY-MM-DD/`), beside the carried-over files of
earlier runs, so the table only ever grows and readers see a run's rows all at once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from alter_pipeline.lake import Lake
from alter_pipeline.lake.schemas import UTC_TIMESTAMP, with_storefront

TABLE = "status_transitions"
APPLIED, SKIPPED, FAILED = "applied", "skipped", "failed"
OUTCOMES = (APPLIED, SKIPPED, FAILED)

STATUS_TRANSITIONS = pa.schema(
    [
        pa.field("order_id", pa.int64(), nullable=False),
        pa.field("rule_id", pa.string(), nullable=False),
        pa.field("from_status", pa.string()),
        pa.field("to_status", pa.string(), nullable=False),
        # true: nothing was sent; `outcome` says what a live run would have done
        pa.field("dry_run", pa.bool_(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("at", UTC_TIMESTAMP, nullable=False),
    ]
)


@dataclass(frozen=True)
class AuditRow:
    order_id: int
    rule_id: str
    from_status: str | None
    to_status: str
    dry_run: bool
    outcome: str
    detail: str
    run_id: str
    at: datetime

    def values(self) -> tuple:
        return (
            self.order_id,
            self.rule_id,
            self.from_status,
            self.to_status,
            self.dry_run,
            self.outcome,
            self.detail,
            self.run_id,
            self.at,
        )


def to_table(rows: list[AuditRow]) -> pa.Table:
    columns = list(zip(*(r.values() for r in rows), strict=True)) if rows else None
    arrays = [
        pa.array(columns[n] if columns else [], type=f.type)
        for n, f in enumerate(STATUS_TRANSITIONS)
    ]
    return pa.Table.from_arrays(arrays, schema=STATUS_TRANSITIONS)


def write_audit(lake: Lake, rows: list[AuditRow], *, run_id: str) -> str | None:
    """Append `rows` to the audit table in a new snapshot; its id, or None if nothing to write."""
    if not rows:
        return None
    by_date: dict[str, list[AuditRow]] = defaultdict(list)
    for row in rows:
        by_date[row.at.strftime("%Y-%m-%d")].append(row)
    with lake.write() as writer:
        writer.carry_over(TABLE)  # earlier runs' files, hard-linked: the table is append-only
        for day, day_rows in sorted(by_date.items()):
            # The lake's schema adds storefront_id, filled by the writer from the snapshot.
            lake_schema = with_storefront(STATUS_TRANSITIONS)
            writer.table(TABLE, lake_schema, partition=f"date={day}").write(to_table(day_rows))
        if writer.parent is not None:  # the synced tables are carried over, so is their meta
            writer.meta.update(writer.parent.manifest.get("meta", {}))
        writer.meta.update(rules_run_id=run_id, status_transitions_rows=len(rows))
        return writer.snapshot_id
