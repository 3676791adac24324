"""Small snapshots for the lake tests: tables of one `id` column."""

from __future__ import annotations

import pyarrow as pa

from alter_pipeline.lake import Lake


def batch(ids: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64())})


def write_snapshot(lake: Lake, **tables: list[int]) -> str:
    with lake.write() as writer:
        for name, ids in tables.items():
            writer.write_table(name, batch(ids))
        return writer.snapshot_id
