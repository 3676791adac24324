"""Compaction: append-only tables keep a bounded number of Parquet files.

`order_events` and `status_transitions` gain a small file with every commit that adds rows
(a sync every 15 minutes: 35,000 files a year), and every reader pays per file: DuckDB opens
each footer, the webhook sensor reads every footer on each tick, an object-store mirror
downloads each one. So when a commit leaves more than `max_small_files` small files (under
`small_file_bytes`) in one folder of a table (a `date=...` partition, or the table's own
folder), they are merged into one file of the snapshot being written, before its manifest:

* rows are copied as they are, in file-name order (a file's name starts with the id of the
  snapshot that wrote it, and ids sort by time), so `sequence`, `event_id` and every other
  column are unchanged, and so is the order of the rows;
* the merge happens inside the writer's temporary directory, so it is part of the commit:
  readers see the snapshot before it or the one after it, never a half-compacted table. The
  parent snapshot keeps its own files (carried files are hard links; only the new
  snapshot's links are removed);
* files are merged only with files of the same schema (an older file of another schema is
  left as it is: the views read with `union_by_name`);
* partitions are never merged with each other: the `date=` folder is a column of the views.

A folder a commit adds to is merged once it holds more than `max_small_files` small files; a
folder it adds nothing to (yesterday's `date=` partition, once today's events go elsewhere)
as soon as it holds more than one. So the table holds one file per past day partition (plus
a large file per `small_file_bytes` of rows), and at most `max_small_files` in today's: a
year of 15-minute syncs ends with about 365 files instead of 35,000. Cursors (the webhook
intake's, the rules sensor's) are sequences, not files, so they are unaffected.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

# Merge once a folder holds more small files than this: at one file per 15-minute sync, a day
# partition is merged about three times a day, and never holds more than 33 files.
MAX_SMALL_FILES = 32
# Files under this size are small; a merged file that reaches it is left alone from then on.
SMALL_FILE_BYTES = 32 * 1024 * 1024
MERGED_ROW_GROUP_ROWS = 128 * 1024


@dataclass(frozen=True)
class CompactionPolicy:
    max_small_files: int = MAX_SMALL_FILES
    small_file_bytes: int = SMALL_FILE_BYTES

    def __post_init__(self) -> None:
        if self.max_small_files < 2:
            raise ValueError("CompactionPolicy.max_small_files must be >= 2")
        if self.small_file_bytes < 1:
            raise ValueError("CompactionPolicy.small_file_bytes must be >= 1")


def compact_table(table_dir: Path, snapshot_id: str, policy: CompactionPolicy) -> int:
    """Merge the small files of every folder of `table_dir` that holds too many; returns how
    many files were merged away (0: nothing to do).

    Too many: more than `policy.max_small_files`, or more than one in a folder this commit
    adds nothing to (yesterday's partition, once today's first events arrive: it will not
    grow again, so its files are merged for good)."""
    if not table_dir.is_dir():
        return 0
    folders = {f.parent for f in table_dir.rglob("*.parquet")}
    merged = 0
    for number, folder in enumerate(sorted(folders)):
        stem = f"part-{snapshot_id}-merged-{number:04d}"
        merged += _compact_folder(folder, stem, f"part-{snapshot_id}-", policy)
    return merged


def _compact_folder(folder: Path, stem: str, own_prefix: str, policy: CompactionPolicy) -> int:
    small = sorted(
        f for f in folder.glob("*.parquet") if f.stat().st_size < policy.small_file_bytes
    )
    growing = any(f.name.startswith(own_prefix) for f in small)
    if len(small) <= (policy.max_small_files if growing else 1):
        return 0
    # The newest file's schema is the table's today: only files of that schema are merged.
    schema = pq.read_schema(small[-1])
    same = [f for f in small if pq.read_schema(f).equals(schema, check_metadata=False)]
    if len(same) < 2:
        return 0
    target = folder / f"{stem}.parquet"
    staged = folder / f".{stem}.parquet.tmp"
    with pq.ParquetWriter(staged, schema, compression="zstd") as out:
        pending: list[pa.RecordBatch] = []
        for file in same:
            for batch in pq.ParquetFile(file).iter_batches(MERGED_ROW_GROUP_ROWS):
                pending.append(batch)
                if sum(b.num_rows for b in pending) >= MERGED_ROW_GROUP_ROWS:
                    out.write_table(pa.Table.from_batches(pending, schema=schema))
                    pending = []
        if pending:  # row groups of the merged size, not one per small file
            out.write_table(pa.Table.from_batches(pending, schema=schema))
    with open(staged, "rb") as handle:
        os.fsync(handle.fileno())
    staged.rename(target)
    for file in same:
        file.unlink()  # this snapshot's link; the parent's file stays where it is
    log.info("merged %d small files of %s into %s", len(same), folder, target.name)
    return len(same)
