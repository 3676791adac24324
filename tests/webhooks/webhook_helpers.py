"""Helpers of the webhook tests: events, a shop (lake + subscriptions file), scripted answers."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from alter_pipeline.config import Settings
from alter_pipeline.events.schema import ORDER_EVENTS, ORDER_EVENTS_TABLE
from alter_pipeline.lake import Lake
from alter_pipeline.webhooks.receiver import Reply

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SECRET_ENV = "SHOP_WEBHOOK_SECRET"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def event(
    sequence: int,
    event_type: str = "order.status_changed",
    *,
    order_id: int | None = None,
    product_id: int | None = None,
    detected_at: datetime | None = None,
    before: Any = None,
    after: Any = None,
) -> dict[str, Any]:
    """One `order_events` row; ids and payload derive from the arguments, as a detector's would."""
    if order_id is None and product_id is None:
        order_id = 1000 + sequence
    return {
        "storefront_id": 12,
        "event_id": f"evt_{sequence:06d}_{event_type.replace('.', '_')}",
        "event_type": event_type,
        "order_id": order_id,
        "product_id": product_id,
        "detected_at": detected_at or T0 + timedelta(seconds=sequence),
        "sequence": sequence,
        "snapshot_id": "snap-test",
        "payload": json.dumps({"before": before, "after": after}),
    }


@dataclasses.dataclass
class Shop:
    """A data dir with a lake and a subscriptions file, the settings that point at them."""

    root: Path
    settings: Settings

    def write_events(self, rows: list[dict[str, Any]]) -> None:
        """Append `rows` to `order_events` in a new lake snapshot, as the detector does."""
        lake = Lake(self.settings.data_dir)
        with lake.write() as writer:
            writer.carry_over(ORDER_EVENTS_TABLE)
            table = pa.Table.from_pylist(rows, schema=ORDER_EVENTS)
            writer.table(ORDER_EVENTS_TABLE, ORDER_EVENTS, partition="date=2026-11-26").write(table)

    def subscribe(self, *endpoints: dict[str, Any]) -> None:
        """Write the subscriptions file; each endpoint defaults to the shop's secret variable."""
        entries = [{"secret_env": SECRET_ENV, "events": ["*"], **e} for e in endpoints]
        self.settings.webhooks_file.write_text(yaml.safe_dump({"endpoints": entries}), "utf-8")


class Script:
    """Scripted answers: per webhook-id queues of replies, then a default."""

    def __init__(self) -> None:
        self.default = Reply(204)
        self.queued: dict[str, list[Reply]] = {}
        self.rule: Callable[[Any], Reply | None] | None = None

    def fail(self, webhook_id: str, *replies: Reply) -> None:
        self.queued.setdefault(webhook_id, []).extend(replies)

    def __call__(self, incoming: Any) -> Reply:
        if self.rule is not None and (reply := self.rule(incoming)) is not None:
            return reply
        queue = self.queued.get(incoming.webhook_id)
        return queue.pop(0) if queue else self.default
