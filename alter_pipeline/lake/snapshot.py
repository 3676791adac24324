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

On object storage (`Lake(root, remote="s3://bucket/prefix")`, see remote.py) the data
directory is a local mirror: the sync engine stages and reads local files as above, and a
commit publishes the snapshot before switching the mirror:

1. upload the snapshot's own files; carried-over files (the parent's, hard-linked) are copied
   server-side from the parent's objects; the manifest last;
2. switch CURRENT with a conditional PUT (`If-Match` the ETag of the CURRENT read before the
   upload, `If-None-Match: *` for a lake's first snapshot): the atomic switch every machine
   observes. If another writer published meanwhile, S3 refuses it (412): `LakeConflictError`,
   nothing switched;
3. rename and swap `lake` locally, then collect old snapshots in the store and in the mirror.

`current()` reads CURRENT (a HEAD and a GET of a tiny object) and, when the mirror lacks that
snapshot, downloads it (files the mirror already has are hard-linked) and swaps `lake` to it,
so every local reader follows the store. A sync killed at any point leaves CURRENT unchanged;
the objects of a snapshot it never published are deleted by a later writer's garbage collection.

Limits. The fcntl lock serialises writers of one mirror only. Across machines the guard is
the compare-and-swap of step 2 (S3 and S3-compatible stores that support conditional writes;
boto3, from the `s3` extra, sends them), besides Dagster's one-run-per-storefront concurrency
limit. Where the store refuses conditional writes (or for other schemes, or without boto3) the
switch falls back to re-reading CURRENT just before the PUT, with a warning: two writers that
both pass that check within the same instant (a few milliseconds) both switch, and the last
PUT wins. A store that silently ignores the condition headers cannot be told apart.
Snapshot ids sort by time, and a new id always sorts after its parent's (even with clocks
skewed between machines). Garbage collection deletes snapshots older than the current one
outside its `keep` most recent ancestors, so a reader must finish a query on a snapshot
within `keep - 1` commits of it ceasing to be current, as on local disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.parquet as pq

from alter_pipeline.lake.compaction import CompactionPolicy, compact_table
from alter_pipeline.lake.remote import CurrentMoved, RemoteStore, attach_to_duckdb

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
ROW_GROUP_ROWS = 128 * 1024
# A download or a staged link this old was left by a killed process, not one in progress.
STALE_AFTER_S = 3600.0
# current() tries again when the snapshot it downloads is collected meanwhile (writers
# moved on): it then follows the newer CURRENT.
MIRROR_ATTEMPTS = 3
ID_STAMP = "%Y%m%dT%H%M%S%fZ"


class LakeBusyError(RuntimeError):
    """Another writer holds the lake lock for longer than we were willing to wait."""


class LakeConflictError(RuntimeError):
    """Another writer published a snapshot to the object store while this one was written."""


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

    @contextlib.contextmanager
    def rewrite(self, name: str) -> Iterator[Path]:
        """Set table `name`'s files written so far aside (closed) and yield their folder, to
        be read while the table is written anew; they are deleted afterwards."""
        aside = self.tmp_dir / ".rewrite" / name
        for writer in self._tables.pop(name, []):
            writer.close()
        aside.parent.mkdir(parents=True, exist_ok=True)
        (self.tmp_dir / name).rename(aside)
        try:
            yield aside
        finally:
            shutil.rmtree(aside.parent)

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
        compacted = self._compact()
        tables = {name: {"rows": _count_rows(self.tmp_dir / name)} for name in sorted(self._tables)}
        manifest = {
            "snapshot_id": self.snapshot_id,
            "created_at": datetime.now(UTC).isoformat(),
            "parent": self.parent.snapshot_id if self.parent else None,
            "tables": tables,
            "meta": self.meta,
        }
        if compacted:  # not in meta: meta carries forward to the next snapshot
            manifest["compacted"] = compacted
        return manifest

    def _compact(self) -> dict[str, int]:
        """Merge small files of tables that gained too many (see compaction.py): files
        merged away per table."""
        merged = {
            name: compact_table(self.tmp_dir / name, self.snapshot_id, self.lake.compaction)
            for name in sorted(self._tables)
        }
        return {name: count for name, count in merged.items() if count}


def _count_rows(folder: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.rglob("*.parquet"))


class Lake:
    """The lake in local directory `data_dir`; with `remote` (an object-store URL) that
    directory is a mirror of the lake published at the URL (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        remote: str | None = None,
        keep: int | None = None,
        compaction: CompactionPolicy | None = None,
    ) -> None:
        self.root = Path(data_dir)
        self.link = self.root / "lake"
        self.snapshots_dir = self.root / "snapshots"
        self.keep = keep if keep is not None else snapshots_kept()
        self.remote = RemoteStore(remote) if remote else None
        self.compaction = compaction or CompactionPolicy()

    @property
    def location(self) -> str:
        """Where the lake is, for messages (an object-store URL without credentials)."""
        return self.remote.location if self.remote else str(self.root)

    # ---- reading ---------------------------------------------------------------------------

    def current(self) -> Snapshot | None:
        if self.remote is None:
            return self._linked()
        for _ in range(MIRROR_ATTEMPTS - 1):
            with contextlib.suppress(FileNotFoundError):
                return self._follow_remote()
        return self._follow_remote()

    def get(self, snapshot_id: str | None) -> Snapshot | None:
        if snapshot_id is None:
            return None
        path = self.snapshots_dir / snapshot_id
        if path.is_dir():
            return self.load(path)
        if self.remote is None:
            return None
        try:
            return self._mirror(snapshot_id)
        except FileNotFoundError:
            return None

    def previous(self) -> Snapshot | None:
        current = self.current()
        return self.get(current.parent_id) if current else None

    @staticmethod
    def load(path: Path) -> Snapshot:
        return Snapshot(path=path, manifest=json.loads((path / MANIFEST).read_text("utf-8")))

    def view_glob(self, table: str, snapshot: Snapshot | None = None) -> str:
        """What a DuckDB view of `table` reads. Locally the stable path through the `lake`
        link (the view never changes). With a remote, the files of `snapshot` (default: the
        current one) in the store: pass the snapshot used for the other views, so that all
        of them read the same one. Read it through `attach_to_duckdb`."""
        if self.remote is None:
            return (self.root.absolute() / "lake" / table / "**" / "*.parquet").as_posix()
        snapshot_id = snapshot.snapshot_id if snapshot else self.remote.current_id()
        if snapshot_id is None:
            raise LookupError(f"the lake at {self.location} has no snapshot yet")
        return f"{self.remote.snapshot_url(snapshot_id)}/{table}/**/*.parquet"

    def attach_to_duckdb(self, con: Any) -> str:
        """Let DuckDB connection `con` read `view_glob`s; returns how (see remote.py)."""
        return "local" if self.remote is None else attach_to_duckdb(con, self.remote.url)

    def _linked(self) -> Snapshot | None:
        if not self.link.is_symlink():
            return None
        return self.load(self.link.resolve())

    # ---- mirroring (with a remote) ------------------------------------------------------------

    def _follow_remote(self) -> Snapshot | None:
        """The snapshot CURRENT names, mirrored, with `lake` linked to it."""
        assert self.remote is not None
        snapshot_id = self.remote.current_id()
        if snapshot_id is None:
            return None
        snapshot = self._mirror(snapshot_id)
        self._point_link_at(snapshot_id)
        return snapshot

    def _mirror(self, snapshot_id: str) -> Snapshot:
        """The local copy of a published snapshot, downloaded if the mirror lacks it.
        Raises FileNotFoundError if the store has no complete snapshot of that id."""
        assert self.remote is not None
        final = self.snapshots_dir / snapshot_id
        if final.is_dir():
            return self.load(final)
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        # Unique: readers in other processes may mirror the same snapshot at the same time.
        staging = self.snapshots_dir / f".tmp-dl-{snapshot_id}-{uuid.uuid4().hex[:6]}"
        try:
            self.remote.download_snapshot(snapshot_id, staging, self._mirrored_files())
            _fsync_dir(staging)
            _rename_unless_there(staging, final)
            _fsync_dir(self.snapshots_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._collect_garbage_if_idle()
        return self.load(final)

    def _mirrored_files(self) -> Callable[[str, int], Path | None]:
        """Finds a file the mirror already holds. A data file's relative path names the
        snapshot that wrote it (part-<id>-NNNN), so the same path and size is the same file."""
        committed = sorted(self._committed(), reverse=True)

        def find(relative: str, size: int) -> Path | None:
            if not relative.rsplit("/", 1)[-1].startswith("part-"):
                return None
            for snapshot in committed:
                candidate = snapshot / relative
                with contextlib.suppress(OSError):
                    if candidate.stat().st_size == size:
                        return candidate
            return None

        return find

    def _point_link_at(self, snapshot_id: str) -> None:
        target = Path("snapshots") / snapshot_id
        if self.link.is_symlink() and Path(os.readlink(self.link)) == target:
            return
        staged_link = self.root / f".lake-{snapshot_id}-{uuid.uuid4().hex[:6]}"
        os.symlink(target, staged_link)
        os.replace(staged_link, self.link)  # the one atomic switch readers observe
        _fsync_dir(self.root)

    # ---- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, timeout: float = 600.0) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        while True:
            with self._try_lock() as locked:
                if locked:
                    yield
                    return
            if time.monotonic() >= deadline:
                raise LakeBusyError(
                    f"another sync has held {self.root / '.lake.lock'} for over {timeout:.0f} s"
                )
            time.sleep(0.2)

    @contextlib.contextmanager
    def _try_lock(self) -> Iterator[bool]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lake.lock", "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def write(self, *, lock_timeout: float = 600.0) -> Iterator[SnapshotWriter]:
        """Write a new snapshot; it becomes current only if the block exits without error."""
        with self.lock(lock_timeout):
            self._remove_stale_temporaries()
            parent = self.current()
            snapshot_id = _new_snapshot_id(after=parent.snapshot_id if parent else None)
            tmp_dir = self.snapshots_dir / f".tmp-{snapshot_id}"
            tmp_dir.mkdir(parents=True)
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
        if self.remote is not None:
            self._publish(writer)
        # A reader may already have mirrored the published snapshot: that copy is as good.
        _rename_unless_there(writer.tmp_dir, self.snapshots_dir / writer.snapshot_id)
        _fsync_dir(self.snapshots_dir)
        self._point_link_at(writer.snapshot_id)
        self._collect_garbage()
        if self.remote is not None:
            self._collect_remote_garbage(writer.snapshot_id)

    def _publish(self, writer: SnapshotWriter) -> None:
        """Upload the staged snapshot and switch CURRENT to it, unless another writer
        switched it since this one read its parent: the switch is conditional on the CURRENT
        read here, before uploading (a compare-and-swap on S3, see remote.py)."""
        assert self.remote is not None
        parent_id = writer.parent.snapshot_id if writer.parent else None
        seen = self.remote.read_current()
        if seen.snapshot_id != parent_id:  # before uploading in vain
            raise self._conflict(seen.snapshot_id, parent_id, writer.snapshot_id)
        carried = _carried_files(writer)
        try:
            self.remote.upload_snapshot(writer.tmp_dir, writer.snapshot_id, parent_id, carried)
        except OSError:
            # e.g. the parent's objects, source of the copies, collected by newer writers
            if (now := self.remote.current_id()) != parent_id:
                raise self._conflict(now, parent_id, writer.snapshot_id) from None
            raise
        try:
            self.remote.set_current(writer.snapshot_id, expected=seen)
        except CurrentMoved as moved:
            raise self._conflict(moved.now, parent_id, writer.snapshot_id) from None

    def _conflict(self, now: str | None, parent_id: str | None, snapshot_id: str) -> Exception:
        return LakeConflictError(
            f"another writer published snapshot {now} to {self.location} while snapshot "
            f"{snapshot_id} was being written from {parent_id or 'an empty lake'}; "
            "CURRENT was left naming theirs and nothing of this run was published. "
            "Re-running is safe: it starts from their snapshot."
        )

    def _remove_stale_temporaries(self) -> None:
        # Only called under the lock, so no other writer owns the .tmp-<id> directories;
        # downloads and staged links of readers (which take no lock) are left until stale.
        if not self.snapshots_dir.is_dir():
            return
        for leftover in self.snapshots_dir.glob(".tmp-*"):
            if not leftover.name.startswith(".tmp-dl-") or _is_stale(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
        for staged in self.root.glob(".lake-*"):
            if _is_stale(staged):
                staged.unlink(missing_ok=True)

    def _committed(self) -> list[Path]:
        if not self.snapshots_dir.is_dir():
            return []
        return sorted(p for p in self.snapshots_dir.iterdir() if not p.name.startswith("."))

    def _collect_garbage(self) -> None:
        linked = os.readlink(self.link) if self.link.is_symlink() else ""
        for old in self._committed()[: -self.keep]:
            if Path(linked).name != old.name:
                shutil.rmtree(old, ignore_errors=True)

    def tidy(self, *, lock_timeout: float = 600.0) -> list[str]:
        """Maintenance, under the writers' lock: delete temporaries left by killed processes
        and snapshots beyond the `keep` most recent (in the mirror and, with a remote, in the
        store: those outside the current one's `keep` ancestors). A commit does the same; this
        covers a lake nobody writes to any more. The names removed (store ones prefixed)."""
        with self.lock(lock_timeout):
            before = self._snapshot_entries()
            self._remove_stale_temporaries()
            self._collect_garbage()
            removed = sorted(before - self._snapshot_entries())
            current_id = self.remote.current_id() if self.remote is not None else None
            if self.remote is not None and current_id is not None:
                deleted = self.remote.collect_garbage(self.keep, current_id)
                removed += [f"{self.remote.location}/snapshots/{s}" for s in deleted]
        return removed

    def _snapshot_entries(self) -> set[str]:
        if not self.snapshots_dir.is_dir():
            return set()
        return {p.name for p in self.snapshots_dir.iterdir()}

    def _collect_garbage_if_idle(self) -> None:
        # A writer holding the lock may be reading an old snapshot: it collects at its commit.
        with self._try_lock() as locked:
            if locked:
                self._collect_garbage()

    def _collect_remote_garbage(self, current_id: str) -> None:
        assert self.remote is not None
        try:
            deleted = self.remote.collect_garbage(self.keep, current_id)
        except (OSError, ValueError) as error:  # published already: the next run retries
            log.warning("could not delete old snapshots at %s: %s", self.location, error)
            return
        if deleted:
            log.info("deleted %d old snapshots at %s", len(deleted), self.location)


SNAPSHOTS_KEPT_ENV = "ALTER_SNAPSHOTS_KEPT"
DEFAULT_SNAPSHOTS_KEPT = 3


def snapshots_kept() -> int:
    """How many snapshots a lake keeps: `ALTER_SNAPSHOTS_KEPT`, default 3 (the current one,
    the parent a sync diffs against, and one for a reader still querying the one before)."""
    text = os.environ.get(SNAPSHOTS_KEPT_ENV, "").strip()
    if not text:
        return DEFAULT_SNAPSHOTS_KEPT
    if not text.isdigit() or int(text) < 2:
        raise ValueError(
            f"{SNAPSHOTS_KEPT_ENV}={text!r}: must be a whole number of at least 2 (the current "
            "snapshot and the one change detection diffs it against)"
        )
    return int(text)


def lake_at(data_dir: Path, remote: str | None = None, root: Path | None = None) -> Lake:
    """The lake at `root` (default `data_dir`; or a storefront's root under it). With
    `remote` (the URL ALTER_DATA_DIR names), `data_dir` is the local mirror and `root` is
    published at the same relative place under the URL."""
    root = root or data_dir
    if remote is None:
        return Lake(root)
    relative = root.relative_to(data_dir).as_posix()
    if relative == ".":
        return Lake(root, remote=remote)
    parts = urlsplit(remote)
    path = f"{parts.path.rstrip('/')}/{relative}"
    return Lake(root, remote=urlunsplit(parts._replace(path=path)))


def _carried_files(writer: SnapshotWriter) -> set[str]:
    """Relative paths of the staged files that are the parent's own (hard links)."""
    parent = writer.parent
    if parent is None:
        return set()
    carried = set()
    for file in writer.tmp_dir.rglob("*.parquet"):
        relative = file.relative_to(writer.tmp_dir)
        source = parent.path / relative
        if source.is_file() and os.path.samefile(file, source):
            carried.add(relative.as_posix())
    return carried


def _new_snapshot_id(after: str | None = None) -> str:
    """A new id, sorting after `after` (the parent's) even if this machine's clock is behind."""
    stamp = datetime.now(UTC)
    previous = _stamp_of(after) if after else None
    if previous is not None and stamp <= previous:
        stamp = previous + timedelta(microseconds=1)
    return f"{stamp.strftime(ID_STAMP)}-{uuid.uuid4().hex[:6]}"


def _stamp_of(snapshot_id: str) -> datetime | None:
    try:
        return datetime.strptime(snapshot_id.split("-")[0], ID_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def _rename_unless_there(source: Path, target: Path) -> None:
    try:
        os.rename(source, target)
    except OSError:
        if not (target / MANIFEST).is_file():
            raise


def _is_stale(path: Path) -> bool:
    try:
        return time.time() - path.lstat().st_mtime > STALE_AFTER_S
    except FileNotFoundError:
        return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
