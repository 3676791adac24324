"""Materialization metadata: row counts, column schema and a markdown preview of a lake table."""

from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from alter_pipeline.lake import Snapshot

PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 8


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name, type=str(f.type), description=None if f.nullable else "required"
            )
            for f in schema
        ]
    )


def markdown_preview(table: pa.Table) -> str:
    columns = table.column_names[:PREVIEW_COLUMNS]
    rows = table.select(columns).slice(0, PREVIEW_ROWS).to_pylist()
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:40]


def newest_rows(snapshot: Snapshot, table: str, limit: int = PREVIEW_ROWS) -> pa.Table:
    """The table's last rows, newest first: a sync writes ascending ids (and date partitions
    sort by date), so the end of the last file holds the newest; reads one row group."""
    files = sorted(snapshot.table_dir(table).rglob("*.parquet"))
    for file in reversed(files):
        parquet = pq.ParquetFile(file)
        for group in reversed(range(parquet.num_row_groups)):
            if parquet.metadata.row_group(group).num_rows:
                rows = parquet.read_row_group(group)
                tail = rows.slice(max(0, rows.num_rows - limit))
                return tail.take(pa.array(range(tail.num_rows - 1, -1, -1)))
    return pq.read_schema(files[0]).empty_table() if files else pa.table({})


def table_metadata(snapshot: Snapshot, table: str, schema: pa.Schema) -> dict[str, Any]:
    return {
        "dagster/row_count": dg.MetadataValue.int(snapshot.rows(table)),
        "dagster/column_schema": column_schema(schema),
        "preview": dg.MetadataValue.md(markdown_preview(newest_rows(snapshot, table))),
        "snapshot_id": snapshot.snapshot_id,
        "path": dg.MetadataValue.path(str(snapshot.table_dir(table))),
    }


def content_version(snapshot: Snapshot, table: str) -> dg.DataVersion:
    """A fingerprint of the table's rows, independent of their order and of which snapshot
    holds them: equal after a sync that changed nothing, so the models downstream are neither
    stale in the UI nor refreshed (their automation condition watches data versions)."""
    files = snapshot.table_dir(table)
    if not any(files.rglob("*.parquet")):
        return dg.DataVersion("empty")
    pattern = (files / "**" / "*.parquet").as_posix().replace("'", "''")
    with duckdb.connect(":memory:") as con:
        row = con.execute(
            f"SELECT count(*), sum(hash(t)::HUGEINT)::VARCHAR FROM read_parquet('{pattern}') t"
        ).fetchall()[0]
    return dg.DataVersion(f"{row[0]}-{row[1]}")
