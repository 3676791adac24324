"""The Dagster code location: assets, checks, jobs, schedules, sensors and resources."""

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
from alter_pipeline.assets.rules import apply_rules_job, rules_sensor, status_transitions
from alter_pipeline.assets.sensors import events_sensor
from alter_pipeline.assets.sync import alter_sync, warehouse_views
from alter_pipeline.assets.webhooks import deliver_webhooks_job
from alter_pipeline.resources import AlterApiResource, LakeResource

order_events_sensor = events_sensor(
    "order_events_sensor",
    "deliver_webhooks_job",
    "Deliver new order events as signed webhooks (rules_sensor applies the rules).",
)


def build_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "alter_api": AlterApiResource(
            api_key=dg.EnvVar("ALTER_API_KEY"), api_token=dg.EnvVar("ALTER_API_TOKEN")
        ),
        "lake": LakeResource(),
    }


defs = dg.Definitions(
    assets=[alter_sync, warehouse_views, analytics, status_transitions],
    asset_checks=asset_checks,
    jobs=[sync_job, analytics_job, apply_rules_job, deliver_webhooks_job],
    schedules=[sync_schedule, reconcile_schedule, analytics_schedule],
    sensors=[order_events_sensor, rules_sensor],
    resources=build_resources(),
)
