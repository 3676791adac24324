"""Verify one inbound request as its platform documents it, on the raw body bytes.

* `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`; the signed content is
  `{t}.{raw body}`, HMAC-SHA256 with the endpoint secret (the whole `whsec_...` text), hex.
  Parsed exactly as Stripe's own library does, so the two accept the same requests; a
  timestamp older than the tolerance is a replay (Stripe checks only that side).
* `shopify`: `X-Shopify-Hmac-Sha256`: base64 HMAC-SHA256 of the raw body with the app secret;
  no timestamp. The event id is `X-Shopify-Event-Id` (the same on every retry), else
  `X-Shopify-Webhook-Id`; the type is `X-Shopify-Topic` (e.g. `orders/paid`).
* `standard-webhooks`: `webhook-id`, `webhook-timestamp`, `webhook-signature` (`v1,<b64>`,
  space-separated); the expected signature comes from the `standardwebhooks` package, the
  timestamp must lie within the tolerance on either side, as the spec says.
* `hmac-sha256`: a shop's own backend: HMAC-SHA256 of the raw body in a configured header,
  hex or base64, after an optional prefix (`sha256=`).

Every comparison is constant-time, and every secret of the source is tried (rotation). A
rejection carries a short public reason and a counter name, never the signature or the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from alter_pipeline.inbound.config import Source

# Rejection counters (`alter-pipeline inbound status`).
MISSING_HEADER, BAD_SIGNATURE, REPLAY, BAD_BODY = "missing_header", "signature", "replay", "body"


class Rejected(Exception):
    """The request is refused: answer `status` with `reason`; count it under `counter`."""

    def __init__(self, status: int, counter: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.counter = counter
        self.reason = reason


@dataclass(frozen=True)
class Verified:
    event_id: str
    type: str


class Verifier:
    """Holds one source's keys (built once at start-up) and checks its requests."""

    def __init__(self, source: Source, secrets: tuple[str, ...]) -> None:
        if not secrets:
            raise ValueError(f"inbound source {source.id} has no secret")
        self.source = source
        self._keys = tuple(s.encode("utf-8") for s in secrets)
        self._webhooks = (
            tuple(Webhook(s) for s in secrets) if source.kind == "standard-webhooks" else ()
        )

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        """`headers` with lower-case names; `now` in Unix seconds. Raises Rejected."""
        kind = self.source.kind
        if kind == "stripe":
            return self._stripe(headers, body, now)
        if kind == "shopify":
            return self._shopify(headers, body)
        if kind == "standard-webhooks":
            return self._standard(headers, body, now)
        return self._plain(headers, body)

    # ---- Stripe -----------------------------------------------------------------------------

    def _stripe(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        header = _required(headers, "stripe-signature")
        timestamp, signatures = _stripe_header(header)
        text = _utf8(body)
        signed = f"{timestamp}.{text}".encode()
        expected = [
            hmac.new(key, signed, hashlib.sha256).hexdigest().encode() for key in self._keys
        ]
        if not _any_equal(expected, [s.encode("utf-8", "replace") for s in signatures]):
            raise Rejected(401, BAD_SIGNATURE, "signature does not match")
        if self.source.tolerance_s and timestamp < now - self.source.tolerance_s:
            raise Rejected(401, REPLAY, "timestamp outside the tolerance (replay?)")
        event = _json_object(body)
        if event.get("object") == "v2.core.event":  # a thin event: Stripe's library refuses it
            raise Rejected(400, BAD_BODY, "thin event notifications are not supported")
        return Verified(_id(event.get("id"), body), str(event.get("type") or ""))

    # ---- Shopify ----------------------------------------------------------------------------

    def _shopify(self, headers: Mapping[str, str], body: bytes) -> Verified:
        given = _base64(_required(headers, "x-shopify-hmac-sha256"))
        expected = [hmac.new(key, body, hashlib.sha256).digest() for key in self._keys]
        if given is None or not _any_equal(expected, [given]):
            raise Rejected(401, BAD_SIGNATURE, "signature does not match")
        event_id = headers.get("x-shopify-event-id") or headers.get("x-shopify-webhook-id")
        return Verified(_id(event_id, body), headers.get("x-shopify-topic", ""))

    # ---- Standard Webhooks ------------------------------------------------------------------

    def _standard(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        msg_id = _required(headers, "webhook-id")
        stamp = _required(headers, "webhook-timestamp")
        signature_header = _required(headers, "webhook-signature")
        try:
            moment = datetime.fromtimestamp(float(stamp), tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise Rejected(401, BAD_SIGNATURE, "webhook-timestamp is not a Unix time") from None
        text = _utf8(body)
        given = []
        for part in signature_header.split(" "):
            version, _, value = part.partition(",")
            if version == "v1":
                given.append(_base64(value) or b"")
        expected = [
            base64.b64decode(w.sign(msg_id, moment, text).split(",", 1)[1]) for w in self._webhooks
        ]
        if not _any_equal(expected, given):
            raise Rejected(401, BAD_SIGNATURE, "signature does not match")
        if abs(now - moment.timestamp()) > self.source.tolerance_s:
            raise Rejected(401, REPLAY, "timestamp outside the tolerance (replay?)")
        event = _json_object(body)
        return Verified(msg_id, str(event.get("type") or ""))

    # ---- a shop's own HMAC ------------------------------------------------------------------

    def _plain(self, headers: Mapping[str, str], body: bytes) -> Verified:
        assert self.source.header is not None
        value = _required(headers, self.source.header.lower()).strip()
        prefix = self.source.prefix
        if prefix and not value.startswith(prefix):
            raise Rejected(401, BAD_SIGNATURE, "signature does not match")
        value = value[len(prefix) :]
        digests = [hmac.new(key, body, hashlib.sha256).digest() for key in self._keys]
        if self.source.encoding == "hex":
            ok = _any_equal([d.hex().encode() for d in digests], [value.lower().encode()])
        else:
            given = _base64(value)
            ok = given is not None and _any_equal(digests, [given])
        if not ok:
            raise Rejected(401, BAD_SIGNATURE, "signature does not match")
        try:
            event: Any = json.loads(body)
        except ValueError:
            event = None  # a shop's own body need not be JSON: its hash is its id then
        fields = event if isinstance(event, dict) else {}
        header_id = headers.get(self.source.id_header.lower()) if self.source.id_header else None
        return Verified(_id(header_id or fields.get("id"), body), str(fields.get("type") or ""))


def stripe_signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The `Stripe-Signature` Stripe would send with `body` (for the demo, the benchmark and
    your own tests of a rule; Stripe's library has `generate_signature_header` too)."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _stripe_header(header: str) -> tuple[int, list[str]]:
    """`t` and the `v1` signatures, parsed as stripe-python parses them (same acceptance)."""
    items = [item.split("=", 2) for item in header.split(",")]
    try:
        # Every `t` item is read (one without `=` fails), the first one counts: as Stripe's.
        stamps = [item[1] for item in items if item[0] == "t"]
        timestamp = int(stamps[0])
        signatures = [item[1] for item in items if item[0] == "v1"]
    except (IndexError, ValueError):
        raise Rejected(401, BAD_SIGNATURE, "Stripe-Signature has no timestamp") from None
    if not signatures:
        raise Rejected(401, BAD_SIGNATURE, "Stripe-Signature has no v1 signature")
    return timestamp, signatures


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise Rejected(401, MISSING_HEADER, f"missing {name} header")
    return value


def _any_equal(expected: list[bytes], given: list[bytes]) -> bool:
    """Whether any given signature equals any expected one; every pair is compared, each in
    constant time, so the time taken tells nothing about which (or how much) matched."""
    found = False
    for want in expected:
        for got in given:
            found |= hmac.compare_digest(want, got)
    return found


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        # The platforms sign text; bytes that are not UTF-8 cannot carry a valid signature.
        raise Rejected(401, BAD_SIGNATURE, "signature does not match") from None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except ValueError:
        raise Rejected(400, BAD_BODY, "the body is not JSON") from None
    if not isinstance(event, dict):
        raise Rejected(400, BAD_BODY, "the body is not a JSON object")
    return event


def _id(value: Any, body: bytes) -> str:
    """The sender's event id, or the body's SHA-256 when it sends none (same body, same id)."""
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()[:200]
    return "sha256:" + hashlib.sha256(body).hexdigest()
