"""Deliveries over real loopback sockets to a real receiver, with a stepped clock."""

import json
import time
from collections import Counter
from datetime import timedelta
from email.utils import format_datetime

from standardwebhooks import Webhook
from webhook_helpers import T0, event

from alter_pipeline.webhooks import MAX_ATTEMPTS, RETRY_DELAYS_S, Outbox, deliver_due, ingest
from alter_pipeline.webhooks.delivery import parse_retry_after, retry_delay
from alter_pipeline.webhooks.receiver import Reply


def run(shop, at=T0, **options):
    """One deliverer pass at a given moment: take in new events, send what is due."""
    ingest(shop.settings, now=at)
    return deliver_due(shop.settings, now=at, **options)


def attempts(shop, event_id, endpoint="shop"):
    with Outbox.open(shop.settings.data_dir) as outbox:
        return outbox.attempts_of(event_id, endpoint)


def delivery(shop, event_id, endpoint="shop"):
    with Outbox.open(shop.settings.data_dir) as outbox:
        return outbox.delivery(endpoint, event_id)


def test_every_delivery_verifies_with_standardwebhooks(shop, receiver, secret):
    shop.write_events([event(i) for i in range(1, 21)])
    shop.subscribe({"id": "shop", "url": receiver.url + "/hooks/alter"})
    report = run(shop)
    assert report.delivered == 20 and len(receiver.received) == 20
    for got in receiver.received:
        # The receiver already verified; verify again here to state the property directly.
        assert Webhook(secret).verify(got.body, got.headers)["data"]["event_id"] == got.webhook_id
        assert got.headers["webhook-signature"].startswith("v1,")
        assert got.headers["webhook-timestamp"].isdigit()
    assert receiver.rejected == []


def test_the_payload_carries_type_event_time_and_before_after(shop, receiver):
    row = event(
        7, "order.status_changed", order_id=42, before={"status": "new"}, after={"status": "paid"}
    )
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    run(shop)
    (got,) = receiver.received
    assert json.loads(got.body) == {
        "type": "order.status_changed",
        "timestamp": "2026-11-26T10:00:07Z",
        "data": {
            "before": {"status": "new"},
            "after": {"status": "paid"},
            "storefront_id": 12,
            "event_id": row["event_id"],
            "order_id": 42,
            "product_id": None,
            "sequence": 7,
            "snapshot_id": "snap-test",
        },
    }
    assert b" " not in got.body  # compact JSON, the very bytes that were signed
    assert got.webhook_id == row["event_id"]


def test_the_retry_schedule_is_the_documented_one():
    assert RETRY_DELAYS_S == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert MAX_ATTEMPTS == 8
    assert [retry_delay(n) for n in range(1, 9)] == [*RETRY_DELAYS_S, None]


def test_a_failing_receiver_gets_the_event_later_exactly_once(shop, receiver, script):
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.fail(row["event_id"], Reply(500), Reply(503))
    assert run(shop, T0).retrying == 1
    assert run(shop, T0 + timedelta(seconds=4)).attempted == 0  # not due yet
    assert run(shop, T0 + timedelta(seconds=5)).retrying == 1
    assert run(shop, T0 + timedelta(seconds=5 + 299)).attempted == 0
    assert run(shop, T0 + timedelta(seconds=5 + 300)).delivered == 1
    for later in (1, 10, 100):
        assert run(shop, T0 + timedelta(hours=later)).attempted == 0
    assert [r.status for r in receiver.received] == [500, 503, 204]
    assert {r.webhook_id for r in receiver.received} == {row["event_id"]}
    assert len(receiver.accepted()) == 1
    log = attempts(shop, row["event_id"])
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in log] == [
        (1, 500, "retry"),
        (2, 503, "retry"),
        (3, 204, "delivered"),
    ]
    assert all(a["latency_ms"] > 0 for a in log) and log[0]["error"].startswith("HTTP 500")


def test_a_timeout_is_a_failure_and_the_event_is_sent_again(shop, receiver, script):
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url, "timeout_s": 0.5})
    script.fail(row["event_id"], Reply(204, delay_s=1.0))
    assert run(shop, T0).retrying == 1
    assert run(shop, T0 + timedelta(seconds=5)).delivered == 1
    assert [r.webhook_id for r in receiver.received] == [row["event_id"]] * 2
    assert attempts(shop, row["event_id"])[0]["error"] == "timed out after 0.5 s"


def test_retry_after_seconds_on_429_delays_the_retry_and_pauses_the_endpoint(
    shop, receiver, script
):
    first, second = event(1), event(2)
    shop.write_events([first])
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.fail(first["event_id"], Reply(429, headers={"Retry-After": "120"}))
    assert run(shop, T0).retrying == 1
    shop.write_events([second])  # a different order: only the pause holds it back
    assert run(shop, T0 + timedelta(seconds=119)).attempted == 0
    report = run(shop, T0 + timedelta(seconds=120))
    assert report.delivered == 2
    assert delivery(shop, first["event_id"])["attempts"] == 2


def test_retry_after_as_an_http_date_on_503_is_honoured(shop, receiver, script):
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    later = format_datetime(T0 + timedelta(minutes=10), usegmt=True)
    script.fail(row["event_id"], Reply(503, headers={"Retry-After": later}))
    run(shop, T0)
    assert (
        delivery(shop, row["event_id"])["next_attempt_at"]
        == (T0 + timedelta(minutes=10)).timestamp()
    )
    assert parse_retry_after(later, T0) == 600
    assert parse_retry_after("soon", T0) is None


def test_410_gone_disables_the_endpoint_and_stops_its_deliveries(shop, receiver, script):
    shop.write_events([event(1), event(2, order_id=1001)])  # same order: the second waits
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.default = Reply(410)
    report = run(shop, T0)
    assert report.disabled == ["shop"] and report.dead == 1
    shop.write_events([event(3)])
    script.default = Reply(204)
    assert run(shop, T0 + timedelta(days=1)).attempted == 0
    assert len(receiver.received) == 1
    from alter_pipeline.webhooks import status

    (endpoint,) = status(shop.settings, now=T0).endpoints
    assert endpoint.state == "disabled" and endpoint.reason.startswith("410 Gone at 2026-11-26")
    assert endpoint.dead == 2 and endpoint.pending == 0


def test_a_delivery_is_dead_after_the_last_attempt(shop, receiver, script):
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.default = Reply(500, body=b"x" * 100_000)  # a long body is read only in part
    at = T0
    reports = [run(shop, at)]
    for delay in RETRY_DELAYS_S:
        at += timedelta(seconds=delay)
        reports.append(run(shop, at))
    assert [r.attempted for r in reports] == [1] * MAX_ATTEMPTS
    assert reports[-1].dead == 1 and all(r.retrying == 1 for r in reports[:-1])
    assert run(shop, at + timedelta(days=30)).attempted == 0
    log = attempts(shop, row["event_id"])
    assert [a["attempt"] for a in log] == list(range(1, 9)) and log[-1]["outcome"] == "dead"
    assert len(log[-1]["error"]) <= 300
    assert delivery(shop, row["event_id"])["state"] == "dead"


def test_only_2xx_is_success_so_a_redirect_is_retried(shop, receiver, script):
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.fail(row["event_id"], Reply(302, headers={"Location": "http://example.invalid/"}))
    assert run(shop, T0).retrying == 1
    assert run(shop, T0 + timedelta(seconds=5)).delivered == 1


def test_an_unreachable_endpoint_is_retried_with_a_clear_error(shop, secret):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": f"http://127.0.0.1:{port}/"})
    assert run(shop, T0).retrying == 1
    assert attempts(shop, row["event_id"])[0]["error"].startswith("ConnectError")


def test_events_of_one_order_arrive_in_order_while_other_orders_proceed(shop, receiver, script):
    a1 = event(1, "order.created", order_id=1)
    b1 = event(2, "order.created", order_id=2)
    a2 = event(3, "order.status_changed", order_id=1)
    b2 = event(4, "order.status_changed", order_id=2)
    a3 = event(5, "order.deleted", order_id=1)
    shop.write_events([a1, b1, a2, b2, a3])
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.fail(a1["event_id"], Reply(500))
    first = run(shop, T0)
    assert first.delivered == 2 and first.retrying == 1  # b1 and b2; a2, a3 wait behind a1
    assert sent_for(receiver, 1) == [a1["event_id"]]
    assert sent_for(receiver, 2) == [b1["event_id"], b2["event_id"]]
    assert run(shop, T0 + timedelta(seconds=5)).delivered == 3
    assert sent_for(receiver, 1) == [a1["event_id"], a1["event_id"], a2["event_id"], a3["event_id"]]


def sent_for(receiver, order_id):
    """Webhook ids of one order in arrival order (orders are sent concurrently)."""
    return [r.webhook_id for r in receiver.received if r.data["order_id"] == order_id]


def test_wildcard_subscriptions_receive_only_matching_types(shop, receiver):
    rows = [
        event(1, "order.created"),
        event(2, "product.updated", product_id=5),
        event(3, "order.deleted"),
        event(4, "product.deleted", product_id=6),
    ]
    shop.write_events(rows)
    shop.subscribe(
        {"id": "orders", "url": receiver.url + "/orders", "events": ["order.*"]},
        {"id": "gone", "url": receiver.url + "/gone", "events": ["*.deleted"]},
        {"id": "all", "url": receiver.url + "/all", "events": ["*"]},
    )
    assert run(shop).delivered == 8
    by_path = {}
    for got in receiver.received:
        by_path.setdefault(got.path, set()).add(got.type)
    assert by_path == {
        "/orders": {"order.created", "order.deleted"},
        "/gone": {"order.deleted", "product.deleted"},
        "/all": {"order.created", "product.updated", "order.deleted", "product.deleted"},
    }


def test_an_endpoint_disabled_in_the_file_gets_nothing(shop, receiver):
    shop.write_events([event(1)])
    shop.subscribe({"id": "shop", "url": receiver.url, "enabled": False})
    assert run(shop).attempted == 0 and receiver.received == []


def test_a_missing_secret_holds_the_endpoint_without_spending_attempts(shop, receiver, monkeypatch):
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    monkeypatch.delenv("SHOP_WEBHOOK_SECRET")
    report = run(shop)
    assert report.held == {
        "shop": "endpoint shop: environment variable SHOP_WEBHOOK_SECRET is not set"
    }
    assert report.attempted == 0 and delivery(shop, row["event_id"])["attempts"] == 0


def test_deliveries_to_different_orders_run_concurrently(shop, receiver, script):
    shop.write_events([event(i) for i in range(1, 17)])  # 16 orders
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.default = Reply(204, delay_s=0.25)
    arrivals: list[float] = []
    script.rule = lambda incoming: arrivals.append(time.monotonic())  # answers the default
    report = run(shop, concurrency=16, per_endpoint=8)
    assert report.delivered == 16
    # Each answer takes 0.25 s: one at a time, requests arrive at least that far apart; in
    # parallel, several arrive before the first answer is out.
    assert sum(1 for t in arrivals if t < arrivals[0] + 0.25) >= 2


def test_each_success_is_sent_once_across_many_runs(shop, receiver, script):
    rows = [event(i, order_id=i % 5) for i in range(1, 41)]
    shop.write_events(rows)
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.rule = lambda got: (
        Reply(500)
        if got.data["sequence"] % 3 == 0 and not _seen(receiver, got.webhook_id)
        else None
    )
    at = T0
    for step in (0, 5, 300, 1800):
        at += timedelta(seconds=step)
        run(shop, at)
    accepted = Counter(r.webhook_id for r in receiver.accepted())
    assert set(accepted) == {r["event_id"] for r in rows}
    assert set(accepted.values()) == {1}


def _seen(receiver, webhook_id):
    return any(r.webhook_id == webhook_id for r in receiver.received)
