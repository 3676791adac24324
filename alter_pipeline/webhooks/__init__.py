"""Signed webhook deliveries of `order_events` to the shop's own HTTP endpoints.

ingest (lake -> outbox) -> deliver_due (outbox -> HTTP, retries) ; status ; replay.
See README.md here, delivery.py for the retry schedule and outbox.py for durability.

Exports load on first use: `alter_pipeline.cli` imports `cli.webhooks` at start-up, and
`alter-pipeline --help` should not pay for pyarrow and httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Endpoint": "config",
    "Problem": "config",
    "Subscriptions": "config",
    "SubscriptionsError": "config",
    "load_subscriptions": "config",
    "parse_subscriptions": "config",
    "SecretError": "signing",
    "MAX_ATTEMPTS": "delivery",
    "RETRY_DELAYS_S": "delivery",
    "DeliveryReport": "delivery",
    "deliver_due": "delivery",
    "ingest": "intake",
    "replay": "intake",
    "Outbox": "outbox",
    "outbox_path": "outbox",
    "EndpointStatus": "monitor",
    "PendingWork": "monitor",
    "WebhooksStatus": "monitor",
    "pending_work": "monitor",
    "status": "monitor",
}

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
]  # the keys of _EXPORTS, spelled out for linters

if TYPE_CHECKING:
    from alter_pipeline.webhooks.config import (
        Endpoint,
        Problem,
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
    from alter_pipeline.webhooks.intake import ingest, replay
    from alter_pipeline.webhooks.monitor import (
        EndpointStatus,
        PendingWork,
        WebhooksStatus,
        pending_work,
        status,
    )
    from alter_pipeline.webhooks.outbox import Outbox, outbox_path
    from alter_pipeline.webhooks.signing import SecretError


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
