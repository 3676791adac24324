"""Jobs and schedules. Cron strings come from the environment so deployments can tune them."""

import os
from collections.abc import Iterator
from typing import Any

import dagster as dg

from alter_pipeline.assets.analytics import ANALYTICS_GROUP
from alter_pipeline.assets.sync import SYNC_GROUP
from alter_pipeline.storefronts import Storefronts

AssetJob = Any  # what dg.define_asset_job returns (Dagster does not export its class)

# Asset jobs take their partitions (one per storefront, if several) from the selected assets.
sync_job = dg.define_asset_job(
    "sync_job",
    selection=dg.AssetSelection.groups(SYNC_GROUP),
    description="Sync orders, order items and products from the API; refresh warehouse views. "
    "With several storefronts, a run syncs one (its partition).",
    executor_def=dg.in_process_executor,
)

analytics_job = dg.define_asset_job(
    "analytics_job",
    selection=dg.AssetSelection.groups(ANALYTICS_GROUP),
    description="Rebuild the dbt models (dashboard tables) and run their tests, over every "
    "storefront's current lake snapshot.",
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


def build_analytics_automation(
    selection: dg.AssetSelection = dg.AssetSelection.groups(ANALYTICS_GROUP),
) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the dbt models' automation conditions every 30 s: a sync that changed data
    is followed by a refresh within a minute."""
    return dg.AutomationConditionSensorDefinition(
        "analytics_automation_sensor",
        target=selection,
        default_status=sensor_default_status(),
        minimum_interval_seconds=30,
        description="Refreshes the dbt models after a sync changed the lake tables they read.",
    )


def build_schedules(
    sync: AssetJob,
    analytics: AssetJob,
    storefronts: Storefronts | None = None,
) -> list[dg.ScheduleDefinition]:
    """The three schedules; with several storefronts each tick requests one run per
    storefront (the run queue's limits bound how many run at once)."""
    full = {"ops": {"alter_sync": {"config": {"full": True}}}}
    return [
        _schedule(
            "sync_schedule",
            sync,
            os.environ.get("ALTER_SYNC_CRON", "*/15 * * * *"),
            "Incremental sync every 15 minutes by default (ALTER_SYNC_CRON).",
            storefronts,
        ),
        _schedule(
            "reconcile_schedule",
            sync,
            os.environ.get("ALTER_RECONCILE_CRON", "30 3 * * *"),
            "Full reconcile daily at 03:30 UTC by default (ALTER_RECONCILE_CRON): bounds "
            "how stale final and rarely re-read orders can be, and catches every deletion.",
            storefronts,
            run_config=full,
        ),
        _schedule(
            "analytics_schedule",
            analytics,
            os.environ.get("ALTER_ANALYTICS_CRON", "0 5 * * *"),
            "Rebuild the dbt models daily at 05:00 UTC by default (ALTER_ANALYTICS_CRON), "
            "for the age-based abandoned carts; a sync that changed data refreshes them "
            "sooner (analytics_automation_sensor).",
            None,  # the models span every storefront (a storefront_id column): one run
        ),
    ]


def _schedule(
    name: str,
    job: AssetJob,
    cron: str,
    description: str,
    storefronts: Storefronts | None,
    run_config: dict[str, Any] | None = None,
) -> dg.ScheduleDefinition:
    if storefronts is None:
        return dg.ScheduleDefinition(
            name=name,
            job=job,
            cron_schedule=cron,
            run_config=run_config or {},
            default_status=_default_status(),
            description=description,
        )

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        default_status=_default_status(),
        description=f"{description} One run per storefront.",
    )
    def _each_storefront(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        tick = context.scheduled_execution_time.isoformat()
        for storefront in storefronts.names:
            yield dg.RunRequest(
                run_key=f"{name}:{storefront}:{tick}",
                partition_key=storefront,
                run_config=run_config or {},
            )

    return _each_storefront


sync_schedule, reconcile_schedule, analytics_schedule = build_schedules(sync_job, analytics_job)
