"""Atomic snapshots of the lake's Parquet tables.

Layout under the data directory::

    snapshots/<snapshot_id>/<table>/[<partition>/]part-*.parquet   committed snapshots
    snapshots/<snapshot_id>/manifest.json                           tables, row counts, parent
    snapshots/.tmp-<snapshot_id>/                                   a snapshot being written
    lake -> snapshots/<snapshot_id>                                 the current snapshot

A writer fills a temporary directory, then commits by renaming it into place and swapping the
`lake` symlink with one `rename(2)`. Readers (DuckDB views over `lake/<table>/`) therefore see
the old tables or the new ones, never a mix, and a sync killed at any point leaves the previous
snapshot current and intact. Tables a writer does not rewrite are carried over as hard links,
so a commit costs no copying. Writers are serialised by an advisory lock on `.lake.lock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
ROW_GROUP_ROWS = 128 * 1024


class LakeBusyError(RuntimeError):
    """Another writer holds the lake lock for longer than we were willing to wait."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    manifest: dict[str, Any]

    @property
    def snapshot_id(self) -> str:
        return self.manifest["snapshot_id"]

    @property
    def parent_id(self) -> str | None:
        return self.manifest.get("parent")

    def table_dir(self, table: str) -> Path:
        return self.path / table

    def has_table(self, table: str) -> bool:
        return table in self.manifest["tables"]

    def rows(self, table: str) -> int:
        return self.manifest["tables"].get(table, {}).get("rows", 0)

    def meta(self, key: str, default: Any = None) -> Any:
        return self.manifest.get("meta", {}).get(key, default)

    def read_table(self, table: str) -> pa.Table:
        return pq.read_table(self.table_dir(table), partitioning="hive")


class TableWriter:
    """Streams record batches of one table into a Parquet file of the snapshot being written.

    Columns of the schema that a batch lacks are filled from `constants` (the storefront id:
    flattened API pages do not carry it, every lake row does)."""

    def __init__(
        self, path: Path, schema: pa.Schema, constants: dict[str, Any] | None = None
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.schema = schema
        self.constants = constants or {}
        self.rows = 0
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.closed = False

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        if batch.schema != self.schema:
            batch = conform(batch, self.schema, self.constants)
        batches = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        self._pending.extend(batches)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending, schema=self.schema))
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._flush()
        self._writer.close()  # an empty table still gets a file: views need its schema
        with open(self.path, "rb") as handle:
            os.fsync(handle.fileno())


def conform(
    batch: pa.RecordBatch | pa.Table, schema: pa.Schema, constants: dict[str, Any]
) -> pa.RecordBatch | pa.Table:
    """`batch` in `schema`'s column order and types; a column it lacks is a constant's value
    (null when there is none)."""
    columns = []
    for field_ in schema:
        if field_.name in batch.schema.names:
            columns.append(batch.column(field_.name).cast(field_.type))
        else:
            value = constants.get(field_.name)
            columns.append(
                pa.nulls(batch.num_rows, field_.type)
                if value is None
                else pa.array([value] * batch.num_rows, field_.type)
            )
    if isinstance(batch, pa.Table):
        return pa.Table.from_arrays(columns, schema=schema)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


@dataclass
class SnapshotWriter:
    lake: Lake
    snapshot_id: str
    tmp_dir: Path
    parent: Snapshot | None
    meta: dict[str, Any] = field(default_factory=dict)
    _tables: dict[str, list[TableWriter]] = field(default_factory=dict)
    _dropped: set[str] = field(default_factory=set)

    def table(self, name: str, schema: pa.Schema, partition: str | None = None) -> TableWriter:
        """A new Parquet file of table `name` (optionally in a hive partition like `date=...`)."""
        folder = self.tmp_dir / name / partition if partition else self.tmp_dir / name
        writers = self._tables.setdefault(name, [])
        stem = f"part-{self.snapshot_id}-{len(writers):04d}.parquet"
        writer = TableWriter(folder / stem, schema, self.constants())
        writers.append(writer)
        return writer

    def constants(self) -> dict[str, Any]:
        """Values of the columns every row of this lake shares (see `TableWriter`)."""
        return {"storefront_id": self.meta.get("storefront_id")}

    def write_table(
        self,
        name: str,
        table: pa.Table,
        partition: str | None = None,
        schema: pa.Schema | None = None,
    ) -> int:
        writer = self.table(name, schema or table.schema, partition)
        writer.write(table)
        return writer.rows

    def carry_over(self, name: str) -> None:
        """Keep the parent's files of `name` (append-only tables add new files beside them)."""
        if self.parent is None or not self.parent.has_table(name):
            return
        source = self.parent.table_dir(name)
        for file in source.rglob("*.parquet"):
            target = self.tmp_dir / name / file.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(file, target)
        self._tables.setdefault(name, [])

    def drop(self, name: str) -> None:
        self._dropped.add(name)

    def close_tables(self) -> None:
        """Finish every file written so far (so it can be read back before the commit)."""
        for writers in self._tables.values():
            for writer in writers:
                writer.close()

    def _finish(self) -> dict[str, Any]:
        self.close_tables()
        if self.parent is not None:
            for name in self.parent.manifest["tables"]:
                if name not in self._tables and name not in self._dropped:
                    self.carry_over(name)
        tables = {name: {"rows": _count_rows(self.tmp_dir / name)} for name in sorted(self._tables)}
        return {
            "snapshot_id": self.snapshot_id,
            "created_at": datetime.now(UTC).isoformat(),
            "parent": self.parent.snapshot_id if self.parent else None,
            "tables": tables,
            "meta": self.meta,
        }


def _count_rows(folder: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.rglob("*.parquet"))


class Lake:
    def __init__(self, data_dir: Path, *, keep: int = 3) -> None:
        self.root = Path(data_dir)
        self.link = self.root / "lake"
        self.snapshots_dir = self.root / "snapshots"
        self.keep = keep

    # ---- reading ---------------------------------------------------------------------------

    def current(self) -> Snapshot | None:
        if not self.link.is_symlink():
            return None
        return self.load(self.link.resolve())

    def get(self, snapshot_id: str | None) -> Snapshot | None:
        if snapshot_id is None:
            return None
        path = self.snapshots_dir / snapshot_id
        return self.load(path) if path.is_dir() else None

    def previous(self) -> Snapshot | None:
        current = self.current()
        return self.get(current.parent_id) if current else None

    @staticmethod
    def load(path: Path) -> Snapshot:
        return Snapshot(path=path, manifest=json.loads((path / MANIFEST).read_text("utf-8")))

    # ---- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, timeout: float = 600.0) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lake.lock", "a+") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LakeBusyError(
                            f"another sync has held {self.root / '.lake.lock'} for over "
                            f"{timeout:.0f} s"
                        ) from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def write(self, *, lock_timeout: float = 600.0) -> Iterator[SnapshotWriter]:
        """Write a new snapshot; it becomes current only if the block exits without error."""
        with self.lock(lock_timeout):
            self._remove_stale_temporaries()
            snapshot_id = _new_snapshot_id()
            tmp_dir = self.snapshots_dir / f".tmp-{snapshot_id}"
            tmp_dir.mkdir(parents=True)
            parent = self.current()
            writer = SnapshotWriter(self, snapshot_id, tmp_dir, parent=parent)
            # Bookkeeping (event sequence, rotation slot, API totals) carries forward unless
            # this writer updates it, so e.g. an analytics commit never resets a cursor.
            writer.meta.update(parent.manifest.get("meta", {}) if parent else {})
            try:
                yield writer
                self._commit(writer)
            finally:
                shutil.rmtree(tmp_dir, ignore_errors=True)

    def _commit(self, writer: SnapshotWriter) -> None:
        manifest = writer._finish()
        manifest_path = writer.tmp_dir / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2, default=str), "utf-8")
        _fsync_dir(writer.tmp_dir)
        final = self.snapshots_dir / writer.snapshot_id
        os.rename(writer.tmp_dir, final)
        _fsync_dir(self.snapshots_dir)
        staged_link = self.root / f".lake-{writer.snapshot_id}"
        os.symlink(Path("snapshots") / writer.snapshot_id, staged_link)
        os.replace(staged_link, self.link)  # the one atomic switch readers observe
        _fsync_dir(self.root)
        self._collect_garbage()

    def _remove_stale_temporaries(self) -> None:
        # Only called under the lock, so no other writer owns these.
        if not self.snapshots_dir.is_dir():
            return
        for leftover in self.snapshots_dir.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for staged in self.root.glob(".lake-*"):
            staged.unlink(missing_ok=True)

    def _collect_garbage(self) -> None:
        committed = sorted(p for p in self.snapshots_dir.iterdir() if not p.name.startswith("."))
        for old in committed[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)


def _new_snapshot_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
