"""Signed webhook deliveries of `order_events` to the shop's own HTTP endpoints.

ingest (lake -> outbox) -> deliver_due (outbox -> HTTP, retries) ; status ; replay.
See delivery.py for the retry schedule and outbox.py for the durability argument.
"""

from alter_pipeline.webhooks.config import (
    Endpoint,
    Problem,
    SecretError,
    Subscriptions,
    SubscriptionsError,
    load_subscriptions,
    parse_subscriptions,
)
from alter_pipeline.webhooks.delivery import (
    MAX_ATTEMPTS,
    RETRY_DELAYS_S,
    DeliveryReport,
    deliver_due,
)
from alter_pipeline.webhooks.ingest import ingest, replay
from alter_pipeline.webhooks.outbox import Outbox, outbox_path
from alter_pipeline.webhooks.status import (
    EndpointStatus,
    PendingWork,
    WebhooksStatus,
    pending_work,
    status,
)

__all__ = [
    "MAX_ATTEMPTS",
    "RETRY_DELAYS_S",
    "DeliveryReport",
    "Endpoint",
    "EndpointStatus",
    "Outbox",
    "PendingWork",
    "Problem",
    "SecretError",
    "Subscriptions",
    "SubscriptionsError",
    "WebhooksStatus",
    "deliver_due",
    "ingest",
    "load_subscriptions",
    "outbox_path",
    "parse_subscriptions",
    "pending_work",
    "replay",
    "status",
]
