"""The lake: explicit Arrow schemas, flattening of API records, atomic Parquet snapshots."""

from alter_pipeline.lake.snapshot import Lake, LakeBusyError, Snapshot, SnapshotWriter

__all__ = ["Lake", "LakeBusyError", "Snapshot", "SnapshotWriter"]
