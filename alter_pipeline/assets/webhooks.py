"""The webhook delivery job: take new `order_events` into the outbox, send what is due.

A sensor (written elsewhere) requests runs of `deliver_webhooks_job` when events arrive or a
retry falls due (`alter_pipeline.webhooks.pending_work` tells it cheaply). Failed deliveries do
not fail the run, they are retried on the schedule; a configuration problem (an invalid
subscriptions file, an endpoint whose secret is missing) does, so someone notices.
"""

from typing import Any

import dagster as dg

from alter_pipeline.assets.scope import scope_of
from alter_pipeline.resources import LakeResource


class DeliverWebhooksConfig(dg.Config):
    max_batch: int = 10_000


@dg.op(
    name="deliver_webhooks",
    description="Ingest new order events into the webhook outbox and send every due delivery.",
    out=dg.Out(dg.Nothing),
    tags={"kind": "webhooks"},
)
def deliver_webhooks(
    context: dg.OpExecutionContext, config: DeliverWebhooksConfig, lake: LakeResource
) -> None:
    """One storefront's events (the run's partition, when there are several) go to the
    endpoints scoped to it, through its own outbox."""
    from alter_pipeline.webhooks import (
        SubscriptionsError,
        deliver_due,
        ingest,
        load_subscriptions,
    )

    scope = scope_of(context, lake)
    settings = scope.settings()
    if not settings.webhooks_file.is_file():
        context.log.warning(f"no webhooks file at {settings.webhooks_file}: nothing to deliver")
        context.add_output_metadata({"skipped": f"no file {settings.webhooks_file}"})
        return
    try:
        subscriptions = load_subscriptions(settings.webhooks_file).scoped(scope.covers)
    except SubscriptionsError as error:
        raise dg.Failure(description=f"invalid webhooks file:\n{error}") from None
    queued = ingest(settings, subscriptions=subscriptions)
    report = deliver_due(settings, max_batch=config.max_batch, subscriptions=subscriptions)
    metadata: dict[str, Any] = {
        "queued": queued,
        "endpoints": len(subscriptions.active()),
        **report.as_metadata(),
    }
    context.log.info(f"queued {queued}; {report.summary()}")
    if report.held:
        raise dg.Failure(
            description="; ".join(report.held.values()),
            metadata=metadata,
        )
    context.add_output_metadata(metadata)


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


deliver_webhooks_job = build_deliver_webhooks_job()
