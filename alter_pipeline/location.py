"""The code location, built for a storefronts configuration: assets, checks, jobs, schedules,
sensors and resources.

With a storefronts.yaml ($ALTER_STOREFRONTS_FILE) every asset and job is partitioned by
storefront name; without one, the deployment has a single storefront and no partitions.
`definitions.py` builds it for this deployment; `jobs_runner` builds what one run needs (for
the storefronts file of the moment and the caller's progress listener).
"""

from typing import Any

import dagster as dg

from alter_pipeline.assets.checks import asset_checks
from alter_pipeline.assets.rules import build_status_transitions
from alter_pipeline.assets.scope import storefront_partitions
from alter_pipeline.assets.sync import build_alter_sync, build_warehouse_views
from alter_pipeline.jobs import (
    analytics_job,
    apply_rules_job,
    build_deliver_webhooks_job,
    maintenance_job,
    sync_job,
)
from alter_pipeline.resources import AlterApiResource, LakeResource
from alter_pipeline.schedules import build_schedules
from alter_pipeline.sensors import (
    build_analytics_automation,
    build_events_sensor,
    build_inbound_sensor,
    build_rules_sensor,
)
from alter_pipeline.storefronts import Storefronts
from alter_pipeline.sync import ProgressCallback


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
    progress: ProgressCallback | None = None,
) -> dg.Definitions:
    """Everything the deployment runs. `progress` hears the sync's progress besides the run's
    log (the CLI's progress bar)."""
    analytics_asset, dbt = _analytics()
    partitions = storefront_partitions(storefronts)
    return dg.Definitions(
        assets=[*_pipeline_assets(partitions, progress), analytics_asset],
        asset_checks=asset_checks,
        jobs=[analytics_job, *_pipeline_jobs(partitions)],
        schedules=build_schedules(storefronts),
        sensors=[
            build_events_sensor(
                "order_events_sensor",
                "deliver_webhooks_job",
                "Deliver new order events as signed webhooks (rules_sensor applies the rules).",
                storefronts,
            ),
            build_rules_sensor(storefronts=storefronts),
            build_inbound_sensor(storefronts=storefronts),
            build_analytics_automation(),
        ],
        # the dbt CLI needs nothing of a deployment's: given resources need not name it
        resources={"dbt": dbt, **(resources or build_resources(storefronts))},
    )


def build_run_definitions(
    job_name: str, storefronts: Storefronts | None, progress: ProgressCallback | None = None
) -> dg.Definitions:
    """What running `job_name` in this process needs: the assets, checks, jobs and resources,
    no schedules or sensors. The dbt side only for the analytics job: importing dagster-dbt
    and dbt costs about 1.5 s of CPU, which every `alter-pipeline sync` used to pay."""
    partitions = storefront_partitions(storefronts)
    assets = _pipeline_assets(partitions, progress)
    jobs = _pipeline_jobs(partitions)
    resources: dict[str, dg.ConfigurableResource] = build_resources(storefronts)
    if job_name == analytics_job.name:
        analytics_asset, resources["dbt"] = _analytics()
        assets.append(analytics_asset)
        jobs = [analytics_job]
    return dg.Definitions(assets=assets, asset_checks=asset_checks, jobs=jobs, resources=resources)


def _pipeline_assets(
    partitions: dg.PartitionsDefinition | None, progress: ProgressCallback | None
) -> list[dg.AssetsDefinition]:
    return [
        build_alter_sync(partitions, progress),
        build_warehouse_views(partitions),
        build_status_transitions(partitions),
    ]


def _pipeline_jobs(partitions: dg.PartitionsDefinition | None) -> list[Any]:
    return [sync_job, apply_rules_job, build_deliver_webhooks_job(partitions), maintenance_job]


def _analytics() -> tuple[dg.AssetsDefinition, dg.ConfigurableResource]:
    # Imported here, not at the top: dagster-dbt and dbt (and the project's parse check) are
    # 1.5 s of CPU at import, needed only where the dbt models run (measured with
    # `python -X importtime -c "import alter_pipeline.jobs_runner"`).
    from alter_pipeline.assets.analytics import analytics, dbt_resource

    return analytics, dbt_resource()
