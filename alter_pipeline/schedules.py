"""Every schedule of the code location. Cron strings come from the environment so deployments
can tune them; schedules (and sensors) are off until enabled in the UI, or ALTER_SCHEDULES_RUNNING.
"""

import os
from collections.abc import Iterator
from typing import Any

import dagster as dg

from alter_pipeline.jobs import analytics_job, maintenance_job, sync_job
from alter_pipeline.storefronts import Storefronts


def automation_running() -> bool:
    """Schedules and sensors are off until enabled in the UI; `make ui` turns them on."""
    return os.environ.get("ALTER_SCHEDULES_RUNNING", "").lower() in ("1", "true", "yes")


def schedule_default_status() -> dg.DefaultScheduleStatus:
    return (
        dg.DefaultScheduleStatus.RUNNING
        if automation_running()
        else dg.DefaultScheduleStatus.STOPPED
    )


def build_schedules(storefronts: Storefronts | None = None) -> list[dg.ScheduleDefinition]:
    """The four schedules; with several storefronts each tick of the sync's two requests one
    run per storefront (the run queue's limits bound how many run at once)."""
    full = {"ops": {"alter_sync": {"config": {"full": True}}}}
    return [
        _schedule(
            "sync_schedule",
            sync_job,
            os.environ.get("ALTER_SYNC_CRON", "*/15 * * * *"),
            "Incremental sync every 15 minutes by default (ALTER_SYNC_CRON).",
            storefronts,
        ),
        _schedule(
            "reconcile_schedule",
            sync_job,
            os.environ.get("ALTER_RECONCILE_CRON", "30 3 * * *"),
            "Full reconcile daily at 03:30 UTC by default (ALTER_RECONCILE_CRON): bounds "
            "how stale final and rarely re-read orders can be, and catches every deletion.",
            storefronts,
            run_config=full,
        ),
        _schedule(
            "analytics_schedule",
            analytics_job,
            os.environ.get("ALTER_ANALYTICS_CRON", "0 5 * * *"),
            "Rebuild the dbt models daily at 05:00 UTC by default (ALTER_ANALYTICS_CRON), "
            "for the age-based abandoned carts; a sync that changed data refreshes them "
            "sooner (analytics_automation_sensor).",
            None,  # the models span every storefront (a storefront_id column): one run
        ),
        _schedule(
            "maintenance_schedule",
            maintenance_job,
            os.environ.get("ALTER_MAINTENANCE_CRON", "15 4 * * *"),
            "Retention daily at 04:15 UTC by default (ALTER_MAINTENANCE_CRON).",
            None,  # one run covers every lake root
        ),
    ]


def _schedule(
    name: str,
    job: Any,  # an asset job or a job: Dagster exports no common class
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
            default_status=schedule_default_status(),
            description=description,
        )

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        default_status=schedule_default_status(),
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
