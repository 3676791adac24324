"""The Dagster code location: assets, checks, jobs, schedules, sensors and resources.

With a storefronts.yaml ($ALTER_STOREFRONTS_FILE) every asset and job is partitioned by
storefront name; without one, the deployment has a single storefront and no partitions.
"""

import dagster as dg

from alter_pipeline.assets.analytics import analytics, dbt_resource
from alter_pipeline.assets.checks import asset_checks
from alter_pipeline.assets.inbound import make_inbound_sensor
from alter_pipeline.assets.jobs import (
    analytics_job,
    build_analytics_automation,
    build_schedules,
    sync_job,
)
from alter_pipeline.assets.maintenance import maintenance_job, maintenance_schedule
from alter_pipeline.assets.rules import apply_rules_job, build_status_transitions, make_rules_sensor
from alter_pipeline.assets.scope import configured_storefronts, storefront_partitions
from alter_pipeline.assets.sensors import events_sensor
from alter_pipeline.assets.sync import build_alter_sync, build_warehouse_views
from alter_pipeline.assets.webhooks import build_deliver_webhooks_job
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.storefronts import Storefronts


def build_resources(storefronts: Storefronts | None = None) -> dict[str, dg.ConfigurableResource]:
    if storefronts is None:
        api = AlterApiResource(
            api_key=dg.EnvVar("ALTER_API_KEY"), api_token=dg.EnvVar("ALTER_API_TOKEN")
        )
    else:
        # Each partition reads its own key and token from the variables storefronts.yaml
        # names; ALTER_API_KEY/TOKEN are not needed (nor read).
        api = AlterApiResource(api_key="", api_token="")
    return {"alter_api": api, "lake": LakeResource()}


def build_definitions(
    storefronts: Storefronts | None = None,
    resources: dict[str, dg.ConfigurableResource] | None = None,
) -> dg.Definitions:
    partitions = storefront_partitions(storefronts)
    return dg.Definitions(
        assets=[
            build_alter_sync(partitions),
            build_warehouse_views(partitions),
            # dbt models over every storefront (storefront_id in each): not partitioned
            analytics,
            build_status_transitions(partitions),
        ],
        asset_checks=asset_checks,
        jobs=[
            sync_job,
            analytics_job,
            apply_rules_job,
            build_deliver_webhooks_job(partitions),
            maintenance_job,
        ],
        schedules=[*build_schedules(sync_job, analytics_job, storefronts), maintenance_schedule],
        sensors=[
            events_sensor(
                "order_events_sensor",
                "deliver_webhooks_job",
                "Deliver new order events as signed webhooks (rules_sensor applies the rules).",
                storefronts,
            ),
            make_rules_sensor(storefronts=storefronts),
            make_inbound_sensor(storefronts=storefronts),
            build_analytics_automation(),
        ],
        # the dbt CLI needs nothing of a deployment's: given resources need not name it
        resources={"dbt": dbt_resource(), **(resources or build_resources(storefronts))},
    )


defs = build_definitions(configured_storefronts())
