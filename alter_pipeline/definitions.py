"""The Dagster code location: assets, checks, jobs, schedules and resources in one place."""

import dagster as dg

from alter_pipeline.assets.analytics import analytics
from alter_pipeline.assets.checks import asset_checks
from alter_pipeline.assets.jobs import (
    analytics_job,
    analytics_schedule,
    reconcile_schedule,
    sync_job,
    sync_schedule,
)
from alter_pipeline.assets.sync import alter_sync, warehouse_views
from alter_pipeline.resources import AlterApiResource, LakeResource


def build_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "alter_api": AlterApiResource(
            api_key=dg.EnvVar("ALTER_API_KEY"), api_token=dg.EnvVar("ALTER_API_TOKEN")
        ),
        "lake": LakeResource(),
    }


defs = dg.Definitions(
    assets=[alter_sync, warehouse_views, analytics],
    asset_checks=asset_checks,
    jobs=[sync_job, analytics_job],
    schedules=[sync_schedule, reconcile_schedule, analytics_schedule],
    resources=build_resources(),
)
