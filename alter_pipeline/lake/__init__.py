"""The lake: explicit Arrow schemas, flattening of API records, atomic Parquet snapshots."""

from alter_pipeline.lake.remote import attach_to_duckdb, is_remote, object_store
from alter_pipeline.lake.snapshot import (
    Lake,
    LakeBusyError,
    LakeConflictError,
    Snapshot,
    SnapshotWriter,
    lake_at,
)

__all__ = [
    "Lake",
    "LakeBusyError",
    "LakeConflictError",
    "Snapshot",
    "SnapshotWriter",
    "attach_to_duckdb",
    "is_remote",
    "lake_at",
    "object_store",
]
