"""Which `Lake` a local root stands for, under the deployment's settings.

With ALTER_DATA_DIR=s3://bucket/prefix, every lake root under the local working directory
(the deployment's, or a storefront's `storefront_id=<id>/`) mirrors the same relative place
under the URL (`lake_at`), so sensors, the rules CLI and the webhook intake on any machine
see the object store's current snapshot, not a stale local one.
"""

from __future__ import annotations

from pathlib import Path

from alter_pipeline.config import Settings
from alter_pipeline.lake.snapshot import Lake, lake_at


def open_lake(root: Path, settings: Settings | None = None) -> Lake:
    settings = settings or Settings.from_env(dotenv=False)
    return lake_at(settings.data_dir.resolve(), settings.lake_url, root.resolve())
