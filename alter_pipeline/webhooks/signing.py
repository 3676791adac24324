"""What one delivery sends: the Standard Webhooks payload bytes and their signature headers.

The body is built once, when the event enters the outbox, and stored as bytes: every retry
and every replay sends exactly the same bytes under the same `webhook-id`, and the signature
is always computed over those bytes, never over a re-serialised copy.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from alter_pipeline.config import ConfigError

USER_AGENT = "alter-pipeline-webhooks/1"
MIN_SECRET_BYTES = 24


class SecretError(ConfigError):
    """An endpoint's secret is unusable. The message names the variable, never its value."""


def secret_from_env(name: str, owner: str | None = None) -> str:
    what = f"{owner}: environment variable {name}" if owner else f"environment variable {name}"
    value = os.environ.get(name, "").strip()
    if not value:
        raise SecretError(f"{what} is not set")
    check_secret(value, what)
    return value


def check_secret(value: str, what: str) -> None:
    if not value.startswith("whsec_"):
        raise SecretError(f"{what} does not hold a whsec_ secret")
    try:
        key = base64.b64decode(value[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        # `from None`: the decoder's message could quote part of the secret.
        raise SecretError(f"{what}: the part after whsec_ is not valid base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise SecretError(f"{what}: the secret must hold at least {MIN_SECRET_BYTES} bytes")


def iso_utc(moment: datetime) -> str:
    """`2026-11-26T10:15:00.123456Z`: ISO-8601 in UTC with the `Z` receivers expect."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_data(event: dict[str, Any]) -> dict[str, Any]:
    """`data` of the payload: the event's own payload (before/after...) plus its identity."""
    try:
        details = json.loads(event["payload"]) if event.get("payload") else {}
    except (TypeError, ValueError):
        details = {"payload_raw": event.get("payload")}  # keep it rather than drop the event
    if not isinstance(details, dict):
        details = {"payload": details}
    identity = {
        "storefront_id": event.get("storefront_id"),
        "event_id": event["event_id"],
        "order_id": event.get("order_id"),
        "product_id": event.get("product_id"),
        "sequence": event.get("sequence"),
        "snapshot_id": event.get("snapshot_id"),
    }
    # Identity last: a payload field of the same name must not disguise which event this is.
    return {**details, **identity}


def build_body(event: dict[str, Any]) -> bytes:
    """The compact JSON bytes of `{"type", "timestamp", "data"}` for one `order_events` row."""
    message = {
        "type": event["event_type"],
        "timestamp": iso_utc(event["detected_at"]),
        "data": event_data(event),
    }
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode("utf-8")


def signed_headers(secret: str, webhook_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """Headers of one attempt; `at` is the attempt's wall-clock time (whole seconds are signed).

    The standardwebhooks package signs `str` data as UTF-8, so decoding our UTF-8 bytes and
    letting it re-encode yields the signature of exactly the bytes we send.
    """
    at = at.astimezone(UTC)  # the package replaces tzinfo with UTC rather than converting
    signature = Webhook(secret).sign(webhook_id, at, body.decode("utf-8"))
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
