"""Status per endpoint, and the cheap `pending_work` a sensor reads."""

from datetime import timedelta

from webhook_helpers import T0, event

from alter_pipeline.webhooks import deliver_due, ingest, pending_work, status
from alter_pipeline.webhooks.receiver import Reply


def test_status_counts_each_state_per_endpoint(shop, receiver, script):
    rows = [event(1), event(2), event(3), event(4, order_id=1003)]  # 4 waits behind 3
    shop.write_events(rows)
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.fail(rows[2]["event_id"], Reply(500, body=b"database down"))
    ingest(shop.settings, now=T0)
    deliver_due(shop.settings, now=T0)
    (endpoint,) = status(shop.settings, now=T0 + timedelta(minutes=1)).endpoints
    assert (endpoint.delivered, endpoint.retrying, endpoint.pending, endpoint.dead) == (2, 1, 1, 0)
    assert endpoint.state == "enabled" and endpoint.reason is None
    assert endpoint.last_success_at == T0 and endpoint.last_failure_at == T0
    assert endpoint.last_error == "HTTP 500: database down"
    assert endpoint.oldest_pending_age_s == 60


def test_status_says_why_an_endpoint_is_not_delivering(shop, secret, monkeypatch):
    shop.subscribe(
        {"id": "off", "url": "http://127.0.0.1:1/", "enabled": False},
        {"id": "nosecret", "url": "http://127.0.0.1:1/", "secret_env": "UNSET_SECRET"},
    )
    monkeypatch.delenv("UNSET_SECRET", raising=False)
    report = status(shop.settings, now=T0)
    states = {e.endpoint_id: (e.state, e.reason) for e in report.endpoints}
    assert states["off"] == ("disabled", f"enabled: false in {shop.settings.webhooks_file}")
    assert states["nosecret"] == (
        "held",
        "endpoint nosecret: environment variable UNSET_SECRET is not set",
    )


def test_status_lists_an_endpoint_removed_from_the_file(shop, receiver):
    shop.write_events([event(1)])
    shop.subscribe({"id": "old", "url": receiver.url})
    ingest(shop.settings, now=T0)
    shop.subscribe({"id": "shop", "url": receiver.url})
    states = {e.endpoint_id: (e.state, e.pending) for e in status(shop.settings).endpoints}
    assert states == {"shop": ("enabled", 0), "old": ("removed", 1)}


def test_pending_work_sees_new_events_and_due_retries(shop, receiver, script):
    assert pending_work(shop.settings).due(T0) is False  # nothing at all, outbox not created
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    work = pending_work(shop.settings)
    assert work.events_waiting == 1 and work.due(T0)
    script.fail(row["event_id"], Reply(500))
    ingest(shop.settings, now=T0)
    deliver_due(shop.settings, now=T0)
    work = pending_work(shop.settings)
    assert work.events_waiting == 0 and work.next_due_at == T0 + timedelta(seconds=5)
    assert not work.due(T0 + timedelta(seconds=4)) and work.due(T0 + timedelta(seconds=5))


def test_pending_work_ignores_events_waiting_behind_a_retry_of_their_order(shop, receiver, script):
    first, second = event(1, order_id=5), event(2, order_id=5)
    shop.write_events([first, second])
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.fail(first["event_id"], Reply(500))
    ingest(shop.settings, now=T0)
    deliver_due(shop.settings, now=T0)
    # `second` is due since T0 but cannot go before `first`: no run is worth asking for yet.
    assert pending_work(shop.settings).next_due_at == T0 + timedelta(seconds=5)


def test_looking_at_status_never_creates_the_outbox(shop, secret):
    shop.subscribe({"id": "shop", "url": "http://127.0.0.1:1/"})
    report = status(shop.settings)
    assert [e.pending for e in report.endpoints] == [0]
    assert not (shop.settings.data_dir / "webhooks").exists()
