from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from asset_helpers import resources_for, sync_config

from alter_pipeline.assets.checks import asset_checks
from alter_pipeline.assets.sync import build_alter_sync, build_warehouse_views

alter_sync, warehouse_views = build_alter_sync(), build_warehouse_views()


@pytest.fixture
def run_sync_job(tmp_path):
    """Materialize the sync assets and their checks against an emulator, in-process."""
    instance = dg.DagsterInstance.ephemeral()

    def run(emulator: Any, *, data_dir: Path | None = None, **config: Any):
        return dg.materialize(
            [alter_sync, warehouse_views, *asset_checks],
            resources=resources_for(emulator, data_dir or tmp_path),
            run_config=sync_config(**config),
            instance=instance,
            raise_on_error=False,
        )

    return run


@pytest.fixture
def run_checks(tmp_path):
    """Run the asset checks of `asset` alone against the lake's current snapshot."""

    def run(emulator: Any, asset: str, data_dir: Path | None = None):
        return dg.materialize(
            [alter_sync, *asset_checks],
            resources=resources_for(emulator, data_dir or tmp_path),
            selection=dg.AssetSelection.checks_for_assets(asset),
        )

    return run
