"""The inbound server over a real loopback socket: what it stores, what it refuses, and that
its verification agrees with the platforms' own libraries."""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import stripe
from inbound_helpers import (
    KINDS,
    LIMIT,
    OLD_SECRETS,
    SECRETS,
    SIGNATURE_HEADERS,
    STANDARD_SECRET,
    STRIPE_SECRET,
    TIMESTAMPED,
    event_body,
    inbound_server,
    sign,
    stats,
    stored_events,
)
from standardwebhooks import Webhook

from alter_pipeline import storefronts
from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.inbound.config import parse_inbound
from alter_pipeline.inbound.server import RunningInbound, open_inboxes


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningInbound]:
    with inbound_server(tmp_path) as running:
        yield running


# One client for the module: a new httpx client costs ~45 ms (its TLS context) per request.
CLIENT = httpx.Client(timeout=10)


def post(server: RunningInbound, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return CLIENT.post(server.url + path, content=body, headers=headers)


def send(server: RunningInbound, kind: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return post(server, f"/hooks/{kind}", body, headers)


@pytest.mark.parametrize("kind", KINDS)
def test_a_signed_request_is_stored_once_and_a_redelivery_is_a_no_op(server, tmp_path, kind):
    body = event_body("evt_1")
    first = send(server, kind, body, sign(kind, body, "evt_1"))
    again = send(server, kind, body, sign(kind, body, "evt_1", at=time.time() + 1))
    assert (first.status_code, first.json()) == (200, {"received": True, "duplicate": False})
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True})
    (event,) = stored_events(tmp_path)
    expected_type = "orders/paid" if kind == "shopify" else "checkout.session.completed"
    assert (event["source"], event["event_id"], event["type"]) == (kind, "evt_1", expected_type)


@pytest.mark.parametrize("kind", KINDS)
def test_the_event_is_in_the_inbox_when_the_2xx_arrives(server, tmp_path, kind):
    body = event_body("evt_durable")
    assert send(server, kind, body, sign(kind, body, "evt_durable")).status_code == 200
    assert [e["event_id"] for e in stored_events(tmp_path)] == ["evt_durable"]  # server still up


@pytest.mark.parametrize("kind", KINDS)
def test_a_tampered_body_is_refused_and_nothing_is_stored(server, tmp_path, kind):
    headers = sign(kind, event_body("evt_1", order_id=7), "evt_1")
    answer = send(server, kind, event_body("evt_1", order_id=8), headers)
    assert answer.status_code == 401
    assert stored_events(tmp_path) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_secret_is_refused_and_nothing_is_stored(server, tmp_path, kind):
    body = event_body("evt_1")
    wrong = SECRETS[kind][:-4] + "zzzz"
    assert send(server, kind, body, sign(kind, body, "evt_1", secret=wrong)).status_code == 401
    assert stored_events(tmp_path) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_signature_header_is_refused_and_nothing_is_stored(server, tmp_path, kind):
    body = event_body("evt_1")
    headers = sign(kind, body, "evt_1")
    for name in SIGNATURE_HEADERS[kind]:
        del headers[name]
    assert send(server, kind, body, headers).status_code == 401
    assert stored_events(tmp_path) == []


@pytest.mark.parametrize("kind", TIMESTAMPED)
def test_a_timestamp_outside_the_tolerance_is_a_replay_and_refused(server, tmp_path, kind):
    body = event_body("evt_old")
    answer = send(server, kind, body, sign(kind, body, "evt_old", at=time.time() - 301))
    assert (answer.status_code, answer.text) == (401, "timestamp outside the tolerance (replay?)")
    assert stored_events(tmp_path) == []


@pytest.mark.parametrize("kind", KINDS)
def test_the_previous_secret_is_accepted_during_a_rotation(server, tmp_path, kind):
    body = event_body("evt_rotated")
    headers = sign(kind, body, "evt_rotated", secret=OLD_SECRETS[kind])
    assert send(server, kind, body, headers).status_code == 200
    assert len(stored_events(tmp_path)) == 1


def test_a_declared_oversized_body_is_refused_413_and_nothing_is_stored(server, tmp_path):
    body = event_body("evt_big") + b" " * LIMIT
    assert send(server, "stripe", body, sign("stripe", body, "evt_big")).status_code == 413
    assert stored_events(tmp_path) == []


def test_a_streamed_oversized_body_is_refused_413_before_its_end_arrives(server, tmp_path):
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /hooks/stripe HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(LIMIT // 1024 + 2):  # past the limit, and the body never ends
            sock.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
        answer = sock.recv(64)  # a server waiting for the whole body would time out here
    assert answer.startswith(b"HTTP/1.1 413")
    assert stored_events(tmp_path) == []


def test_an_unknown_path_is_404_and_a_wrong_method_405(server, tmp_path):
    body = event_body("evt_1")
    assert post(server, "/hooks/unknown", body, sign("stripe", body, "evt_1")).status_code == 404
    assert CLIENT.get(server.url + "/hooks/stripe").status_code == 405
    assert stored_events(tmp_path) == []


def test_status_counts_received_duplicates_and_rejections_by_reason(tmp_path):
    body = event_body("evt_1")
    with inbound_server(tmp_path) as running:
        for _ in range(2):
            send(running, "stripe", body, sign("stripe", body, "evt_1"))
        send(running, "stripe", body + b" ", sign("stripe", body, "evt_1"))
        send(running, "stripe", body, {})
        send(running, "stripe", body, sign("stripe", body, "evt_1", at=time.time() - 600))
        send(running, "stripe", body + b" " * LIMIT, sign("stripe", body, "evt_1"))
    counts = stats(tmp_path)["stripe"]  # the counters are flushed when the server stops
    assert counts == {
        "received": 2,
        "stored": 1,
        "pending": 1,
        "duplicate": 1,
        "rejected:signature": 1,
        "rejected:missing_header": 1,
        "rejected:replay": 1,
        "rejected:too_large": 1,
    }


def test_concurrent_requests_are_each_stored_once(server, tmp_path):
    def deliver(n: int) -> int:
        body = event_body(f"evt_{n}")
        return send(server, "standard", body, sign("standard", body, f"evt_{n}")).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(deliver, [n % 40 for n in range(80)]))  # each twice
    assert codes == [200] * 80
    events = stored_events(tmp_path)
    assert sorted(e["event_id"] for e in events) == sorted(f"evt_{n}" for n in range(40))


def test_no_secret_signature_or_body_is_logged_or_echoed(tmp_path, caplog):
    lines: list[str] = []
    body = event_body("evt_1", order_id=424242)
    headers = sign("stripe", body, "evt_1")
    caplog.set_level(logging.DEBUG)
    with inbound_server(tmp_path, on_line=lines.append) as running:
        answers = [
            send(running, "stripe", body, headers),
            send(running, "stripe", body + b"x", headers),
            send(running, "stripe", body, sign("stripe", body, "evt_1", secret="whsec_wrong")),
        ]
    signature = headers["Stripe-Signature"].split("v1=")[1]
    said = "\n".join([caplog.text, *lines, *(a.text for a in answers)])
    for secret in (STRIPE_SECRET, signature, "424242", 'checkout.session",'):
        assert secret not in said
    assert "evt_1" in "\n".join(lines)  # the event id is what a line names


# ---- the platforms' own libraries agree ---------------------------------------------------


def stripe_variants(now: int) -> list[tuple[str, bytes, str]]:
    """(case, body, Stripe-Signature) with one event id each, valid and not."""
    out = []

    def body(n: int) -> bytes:
        return event_body(f"evt_x{n}")

    def v1(payload: bytes, t: int, secret: str = STRIPE_SECRET) -> str:
        header = stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, t)
        return header.split(",", 1)[1]

    cases = [
        ("valid", lambda b: f"t={now},{v1(b, now)}"),
        ("two v1, second right", lambda b: f"t={now},v1=00ff,{v1(b, now)}"),
        ("v0 and v1", lambda b: f"t={now},v0=abc,{v1(b, now)}"),
        ("only a wrong v1", lambda b: f"t={now},v1={'0' * 64}"),
        ("wrong secret", lambda b: f"t={now},{v1(b, now, 'whsec_other')}"),
        ("signed for another t", lambda b: f"t={now},{v1(b, now - 1)}"),
        ("expired", lambda b: f"t={now - 400},{v1(b, now - 400)}"),
        ("inside the tolerance", lambda b: f"t={now - 250},{v1(b, now - 250)}"),
        ("in the future", lambda b: f"t={now + 600},{v1(b, now + 600)}"),
        ("no t", lambda b: v1(b, now)),
        ("t without value", lambda b: f"t,{v1(b, now)}"),
        ("t not a number", lambda b: f"t=abc,{v1(b, now)}"),
        ("no v1", lambda b: f"t={now}"),
        ("upper-case hex", lambda b: f"t={now},{v1(b, now).upper().replace('V1=', 'v1=')}"),
        ("garbage", lambda b: "garbage"),
        ("space after the comma", lambda b: f"t={now}, {v1(b, now)}"),
        ("v1 with an extra =", lambda b: f"t={now},{v1(b, now)}=x"),
    ]
    for n, (case, header) in enumerate(cases):
        payload = body(n)
        out.append((case, payload, header(payload)))
    not_json = b"not json"
    out.append(("valid signature, not JSON", not_json, f"t={now},{v1(not_json, now)}"))
    return out


def test_the_server_accepts_exactly_what_stripes_library_accepts(server):
    now = int(time.time())
    verdicts = {}
    for case, body, header in stripe_variants(now):
        ours = send(server, "stripe", body, {"Stripe-Signature": header}).status_code == 200
        try:
            stripe.Webhook.construct_event(body, header, STRIPE_SECRET)
            theirs = True
        except Exception:  # SignatureVerificationError, or a body it cannot read
            theirs = False
        verdicts[case] = (ours, theirs)
    assert {case: ours for case, (ours, _) in verdicts.items()} == {
        case: theirs for case, (_, theirs) in verdicts.items()
    }
    assert sum(ours for ours, _ in verdicts.values()) == 6  # not a vacuous agreement


def test_the_server_accepts_exactly_what_standardwebhooks_accepts(server):
    now = int(time.time())
    hook = Webhook(STANDARD_SECRET)

    def signature(msg_id: str, at: int, body: bytes, secret: str = STANDARD_SECRET) -> str:
        return Webhook(secret).sign(msg_id, datetime.fromtimestamp(at, tz=UTC), body.decode())

    cases = {
        "valid": lambda i, b: (now, signature(i, now, b)),
        "two signatures": lambda i, b: (now, f"v1,AAAA {signature(i, now, b)}"),
        "v2 then v1": lambda i, b: (now, f"v2,abc {signature(i, now, b)}"),
        "wrong secret": lambda i, b: (now, signature(i, now, b, OLD_SECRETS["plain"] + "==")),
        "expired": lambda i, b: (now - 400, signature(i, now - 400, b)),
        "too new": lambda i, b: (now + 400, signature(i, now + 400, b)),
        "inside the tolerance": lambda i, b: (now - 250, signature(i, now - 250, b)),
        "another timestamp signed": lambda i, b: (now, signature(i, now - 1, b)),
        "no version": lambda i, b: (now, signature(i, now, b).split(",", 1)[1]),
    }
    verdicts = {}
    for n, (case, make) in enumerate(cases.items()):
        msg_id, body = f"msg_{n}", event_body(f"msg_{n}")
        at, sig = make(msg_id, body)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": sig}
        ours = send(server, "standard", body, headers).status_code == 200
        try:
            hook.verify(body, headers)
            theirs = True
        except Exception:
            theirs = False
        verdicts[case] = (ours, theirs)
    assert {c: o for c, (o, _) in verdicts.items()} == {c: t for c, (_, t) in verdicts.items()}
    assert sum(o for o, _ in verdicts.values()) == 4


# ---- several storefronts --------------------------------------------------------------------


def test_a_source_of_a_storefront_stores_into_that_storefronts_lake_root(tmp_path):
    storefronts.link_name(tmp_path, "berlin", 12)  # what berlin's first sync does
    (tmp_path / "storefront_id=12").mkdir()
    settings = dataclasses.replace(Settings(), data_dir=tmp_path)
    berlin = "sources:\n  - {id: s, path: /s, kind: shopify, secret_env: S, storefront: berlin}\n"
    inbox = open_inboxes(parse_inbound(berlin), settings)["s"]
    assert inbox.path == tmp_path / "storefront_id=12" / "inbound" / "inbox.sqlite"
    inbox.close()
    paris = berlin.replace("berlin", "paris")
    with pytest.raises(ConfigError, match="storefront paris has no lake yet"):
        open_inboxes(parse_inbound(paris), settings)
