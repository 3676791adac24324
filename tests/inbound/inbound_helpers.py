"""Helpers of the inbound tests: each platform's signing, done the way the platform does it
(Stripe's and Standard Webhooks' own libraries where they sign), and a server on a loopback
port over a fresh inbox."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stripe
from standardwebhooks import Webhook

from alter_pipeline.inbound.config import parse_inbound
from alter_pipeline.inbound.inbox import Inbox
from alter_pipeline.inbound.server import InboundApp, RunningInbound, run_inbound_server

STRIPE_SECRET = "whsec_stripe_test_secret_0123456789"
SHOPIFY_SECRET = "shpss_shopify_app_secret_0123456789"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-secret-32-bytes").decode()
PLAIN_SECRET = "shop-backend-secret-0123456789"
OLD_SECRETS = {
    "stripe": "whsec_stripe_old_secret_9876543210",
    "shopify": "shpss_shopify_old_secret_9876543210",
    "standard": "whsec_" + base64.b64encode(b"the-old-standard-webhooks-secret").decode(),
    "plain": "shop-backend-old-secret-9876543210",
}
SECRETS = {
    "stripe": STRIPE_SECRET,
    "shopify": SHOPIFY_SECRET,
    "standard": STANDARD_SECRET,
    "plain": PLAIN_SECRET,
}
KINDS = tuple(SECRETS)
TIMESTAMPED = ("stripe", "standard")
LIMIT = 4096

CONFIG = f"""
max_body_bytes: {LIMIT}
sources:
  - {{id: stripe, path: /hooks/stripe, kind: stripe, secret_env: [S_NEW, S_OLD]}}
  - {{id: shopify, path: /hooks/shopify, kind: shopify, secret_env: [SH_NEW, SH_OLD]}}
  - {{id: standard, path: /hooks/standard, kind: standard-webhooks, secret_env: [W_NEW, W_OLD]}}
  - id: plain
    path: /hooks/plain
    kind: hmac-sha256
    secret_env: [P_NEW, P_OLD]
    header: X-Signature
    prefix: "sha256="
    id_header: X-Event-Id
"""


def event_body(event_id: str, order_id: int = 7, kind: str = "checkout.session.completed") -> bytes:
    """A Stripe-shaped event body naming an Alter order in its metadata."""
    event = {
        "id": event_id,
        "object": "event",
        "type": kind,
        "data": {
            "object": {"object": "checkout.session", "metadata": {"alter_order_id": order_id}}
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def sign(
    kind: str, body: bytes, event_id: str, *, secret: str | None = None, at: float | None = None
) -> dict[str, str]:
    """The headers the platform of `kind` sends with `body`."""
    secret = secret or SECRETS[kind]
    at = time.time() if at is None else at
    if kind == "stripe":
        header = stripe.WebhookSignature.generate_signature_header(
            body.decode(), secret, timestamp=int(at)
        )
        return {"Stripe-Signature": header}
    if kind == "shopify":
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        return {
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-Topic": "orders/paid",
        }
    if kind == "standard":
        moment = datetime.fromtimestamp(int(at), tz=UTC)
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(at)),
            "webhook-signature": Webhook(secret).sign(event_id, moment, body.decode()),
        }
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={digest}", "X-Event-Id": event_id}


SIGNATURE_HEADERS = {
    "stripe": ("Stripe-Signature",),
    "shopify": ("X-Shopify-Hmac-Sha256",),
    "standard": ("webhook-signature",),
    "plain": ("X-Signature",),
}


def secrets_env() -> dict[str, str]:
    names = {"stripe": "S", "shopify": "SH", "standard": "W", "plain": "P"}
    env = {}
    for kind, prefix in names.items():
        env[f"{prefix}_NEW"] = SECRETS[kind]
        env[f"{prefix}_OLD"] = OLD_SECRETS[kind]
    return env


@contextlib.contextmanager
def inbound_server(
    root: Path, config_text: str = CONFIG, **app_options: Any
) -> Iterator[RunningInbound]:
    config = parse_inbound(config_text)
    env = secrets_env()
    secrets = {s.id: s.secrets(env) for s in config.sources}
    inbox = Inbox.for_root(root)
    app = InboundApp(config, dict.fromkeys(config.ids, inbox), secrets=secrets, **app_options)
    try:
        with run_inbound_server(app) as running:
            yield running
    finally:
        inbox.close()


def stored_events(root: Path) -> list[dict[str, Any]]:
    with Inbox.for_root(root) as inbox:
        return inbox.events()


def stats(root: Path) -> dict[str, dict[str, int]]:
    with Inbox.for_root(root) as inbox:
        return inbox.stats()
