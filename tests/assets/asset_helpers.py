"""Helpers of the asset tests (a unique module name: pytest puts each test folder on sys.path,
and other folders have conftest modules of their own)."""

from pathlib import Path
from typing import Any

from alter_pipeline.resources import AlterApiResource, LakeResource


def resources_for(emulator: Any, data_dir: Path) -> dict[str, Any]:
    return {
        "alter_api": AlterApiResource(
            base_url=emulator.base_url,
            api_key=emulator.key,
            api_token=emulator.token,
            max_attempts=3,
        ),
        "lake": LakeResource(data_dir=str(data_dir)),
    }


def sync_config(**config: Any) -> dict[str, Any]:
    return {"ops": {"alter_sync": {"config": config}}}
