"""Jobs and schedules. Cron strings come from the environment so deployments can tune them."""

import os

import dagster as dg

from alter_pipeline.assets.analytics import ANALYTICS_GROUP
from alter_pipeline.assets.sync import SYNC_GROUP

sync_job = dg.define_asset_job(
    "sync_job",
    selection=dg.AssetSelection.groups(SYNC_GROUP),
    description="Sync orders, order items and products from the API; refresh warehouse views.",
    executor_def=dg.in_process_executor,
)

analytics_job = dg.define_asset_job(
    "analytics_job",
    selection=dg.AssetSelection.groups(ANALYTICS_GROUP),
    description="Rebuild the dashboard tables from the current lake snapshot.",
    executor_def=dg.in_process_executor,
)


def automation_running() -> bool:
    """Schedules and sensors are off until enabled in the UI; `make ui` turns them on."""
    return os.environ.get("ALTER_SCHEDULES_RUNNING", "").lower() in ("1", "true", "yes")


def sensor_default_status() -> dg.DefaultSensorStatus:
    return (
        dg.DefaultSensorStatus.RUNNING if automation_running() else dg.DefaultSensorStatus.STOPPED
    )


def _default_status() -> dg.DefaultScheduleStatus:
    return (
        dg.DefaultScheduleStatus.RUNNING
        if automation_running()
        else dg.DefaultScheduleStatus.STOPPED
    )


sync_schedule = dg.ScheduleDefinition(
    name="sync_schedule",
    job=sync_job,
    cron_schedule=os.environ.get("ALTER_SYNC_CRON", "*/15 * * * *"),
    default_status=_default_status(),
    description="Incremental sync every 15 minutes by default (ALTER_SYNC_CRON).",
)

reconcile_schedule = dg.ScheduleDefinition(
    name="reconcile_schedule",
    job=sync_job,
    cron_schedule=os.environ.get("ALTER_RECONCILE_CRON", "30 3 * * *"),
    run_config={"ops": {"alter_sync": {"config": {"full": True}}}},
    default_status=_default_status(),
    description="Full reconcile daily at 03:30 UTC by default (ALTER_RECONCILE_CRON): bounds "
    "how stale final and rarely re-read orders can be, and catches every deletion.",
)

analytics_schedule = dg.ScheduleDefinition(
    name="analytics_schedule",
    job=analytics_job,
    cron_schedule=os.environ.get("ALTER_ANALYTICS_CRON", "0 5 * * *"),
    default_status=_default_status(),
    description="Rebuild dashboard tables daily at 05:00 UTC by default (ALTER_ANALYTICS_CRON).",
)
