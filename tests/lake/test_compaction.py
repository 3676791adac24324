"""Compaction of append-only tables: many tiny snapshots end with a bounded number of files,
every row still there, unchanged, and every snapshot readable as it was committed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alter_pipeline.events.schema import ORDER_EVENTS, ORDER_EVENTS_TABLE
from alter_pipeline.lake import Lake
from alter_pipeline.lake.compaction import CompactionPolicy
from alter_pipeline.webhooks.intake import read_events

POLICY = CompactionPolicy(max_small_files=4)
START = datetime(2026, 1, 1, tzinfo=UTC)


class EventSource:
    """Tiny batches of events as a sync writes them: consecutive sequences, stable ids."""

    def __init__(self) -> None:
        self.sequence = 0
        self.written: list[tuple[int, str]] = []

    def batch(self, at: datetime, count: int = 2) -> pa.Table:
        rows = []
        for _ in range(count):
            self.sequence += 1
            event_id = hashlib.sha256(str(self.sequence).encode()).hexdigest()[:32]
            self.written.append((self.sequence, event_id))
            rows.append(
                {
                    "event_id": event_id,
                    "event_type": "order.status_changed",
                    "order_id": self.sequence % 50,
                    "product_id": None,
                    "detected_at": at,
                    "sequence": self.sequence,
                    "snapshot_id": "s",
                    "payload": "{}",
                    "storefront_id": 1,
                }
            )
        return pa.Table.from_pylist(rows, schema=ORDER_EVENTS)


def sync_at(lake: Lake, source: EventSource, at: datetime) -> str:
    """One commit the way the sync appends events: the parent's files, one new file."""
    with lake.write() as writer:
        writer.carry_over(ORDER_EVENTS_TABLE)
        partition = f"date={at.date().isoformat()}"
        writer.write_table(ORDER_EVENTS_TABLE, source.batch(at), partition=partition)
        return writer.snapshot_id


def event_files(lake: Lake) -> list[Path]:
    snapshot = lake.current()
    assert snapshot is not None
    return sorted(snapshot.table_dir(ORDER_EVENTS_TABLE).rglob("*.parquet"))


def test_many_tiny_snapshots_over_many_days_end_with_a_bounded_file_count(tmp_path: Path) -> None:
    lake, source = Lake(tmp_path, compaction=POLICY), EventSource()
    days, syncs_a_day = 10, 6
    for day in range(days):
        for sync in range(syncs_a_day):
            sync_at(lake, source, START + timedelta(days=day, hours=4 * sync))
    # One file per past day, at most `max_small_files` (+1 before the merge) for today.
    assert len(event_files(lake)) <= (days - 1) + POLICY.max_small_files
    assert lake.current().rows(ORDER_EVENTS_TABLE) == days * syncs_a_day * 2


def test_compacted_events_keep_their_sequence_and_id_and_the_cursor_reads_the_same(
    tmp_path: Path,
) -> None:
    lake, source = Lake(tmp_path, compaction=POLICY), EventSource()
    for hour in range(30):
        sync_at(lake, source, START + timedelta(hours=hour))
    table = read_events(tmp_path)
    pairs = zip(table["sequence"].to_pylist(), table["event_id"].to_pylist(), strict=True)
    assert list(pairs) == source.written
    past_cursor = read_events(tmp_path, after_sequence=41)["sequence"].to_pylist()
    assert past_cursor == list(range(42, source.sequence + 1))
    # The merged file holds its rows in sequence order, as the small files did.
    for file in event_files(lake):
        sequences = pq.read_table(file, columns=["sequence"])["sequence"].to_pylist()
        assert sequences == sorted(sequences)


def test_a_snapshot_committed_before_a_compaction_still_reads_every_file(tmp_path: Path) -> None:
    lake, source = Lake(tmp_path, compaction=POLICY), EventSource()
    for hour in range(POLICY.max_small_files):
        sync_at(lake, source, START + timedelta(minutes=15 * hour))
    before = lake.current()
    rows_before = before.read_table(ORDER_EVENTS_TABLE).sort_by("sequence")
    sync_at(lake, source, START + timedelta(hours=2))  # one file too many: merged
    after = lake.current()
    assert after.manifest["compacted"] == {ORDER_EVENTS_TABLE: POLICY.max_small_files + 1}
    assert len(event_files(lake)) == 1
    # The older snapshot (a reader may be in the middle of a query on it) is untouched.
    assert before.read_table(ORDER_EVENTS_TABLE).sort_by("sequence").equals(rows_before)
    assert len(list(before.table_dir(ORDER_EVENTS_TABLE).rglob("*.parquet"))) == 4


def test_a_past_days_partition_is_merged_once_the_next_day_begins(tmp_path: Path) -> None:
    lake, source = Lake(tmp_path, compaction=POLICY), EventSource()
    for quarter in range(3):
        sync_at(lake, source, START + timedelta(minutes=15 * quarter))
    assert len(event_files(lake)) == 3  # today's partition, under the threshold
    sync_at(lake, source, START + timedelta(days=1))
    by_day = {f.parent.name: 0 for f in event_files(lake)}
    for file in event_files(lake):
        by_day[file.parent.name] += 1
    assert by_day == {"date=2026-01-01": 1, "date=2026-01-02": 1}


def test_files_of_another_schema_are_left_as_they_are(tmp_path: Path) -> None:
    lake, source = Lake(tmp_path, compaction=POLICY), EventSource()
    with lake.write() as writer:  # an older version's file, without storefront_id
        old = source.batch(START).drop_columns(["storefront_id"])
        writer.write_table(ORDER_EVENTS_TABLE, old, partition="date=2026-01-01")
    for quarter in range(1, 5):  # the fourth leaves five small files: four are merged
        sync_at(lake, source, START + timedelta(minutes=15 * quarter))
    schemas = [pq.read_schema(f).names for f in event_files(lake)]
    assert sorted("storefront_id" in names for names in schemas) == [False, True]
    assert lake.current().rows(ORDER_EVENTS_TABLE) == source.sequence


def test_compaction_policy_rejects_a_threshold_below_two() -> None:
    with pytest.raises(ValueError, match="max_small_files"):
        CompactionPolicy(max_small_files=1)
