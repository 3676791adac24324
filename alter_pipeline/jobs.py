"""Every job of the code location: what a schedule, a sensor or the CLI asks to run.

Asset jobs take their partitions (one per storefront, if several) from the assets they select;
the webhook job, an op job, is built for the partitions given. Names never change: run history
and the UI know them.
"""

import dagster as dg

from alter_pipeline.assets.groups import ANALYTICS_GROUP, SYNC_GROUP
from alter_pipeline.assets.maintenance import apply_retention
from alter_pipeline.assets.rules import ASSET as RULES_ASSET
from alter_pipeline.assets.webhooks import deliver_webhooks

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

apply_rules_job = dg.define_asset_job(
    "apply_rules_job",
    selection=dg.AssetSelection.assets(RULES_ASSET),
    description="Apply the status rules of $ALTER_RULES_FILE to matching orders (audited).",
    executor_def=dg.in_process_executor,
)


def build_deliver_webhooks_job(
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.JobDefinition:
    @dg.job(
        name="deliver_webhooks_job",
        description="Deliver order events to the shop's webhook endpoints (signed, retried).",
        executor_def=dg.in_process_executor,
        tags={"team": "data-engineering"},
        partitions_def=partitions_def,
    )
    def deliver_webhooks_job() -> None:
        deliver_webhooks()

    return deliver_webhooks_job


@dg.job(
    name="maintenance_job",
    description="Retention: forget what is no longer needed (alter-pipeline maintenance).",
    executor_def=dg.in_process_executor,
)
def maintenance_job() -> None:
    apply_retention()
