"""Replay: events detected since a moment go out again under the same webhook-id."""

from datetime import timedelta

import pytest
from webhook_helpers import T0, event

from alter_pipeline.config import ConfigError
from alter_pipeline.webhooks import deliver_due, ingest, replay


def deliver(shop, at=T0):
    ingest(shop.settings, now=at)
    return deliver_due(shop.settings, now=at)


def test_replay_resends_delivered_events_with_the_same_webhook_id_and_body(shop, receiver):
    rows = [event(i) for i in range(1, 6)]  # detected at T0+1s .. T0+5s
    shop.write_events(rows)
    shop.subscribe({"id": "shop", "url": receiver.url})
    deliver(shop)
    first = {r.webhook_id: r.body for r in receiver.received}
    assert replay(shop.settings, T0 + timedelta(seconds=3), now=T0 + timedelta(hours=1)) == 3
    assert deliver(shop, T0 + timedelta(hours=1)).delivered == 3
    again = receiver.received[5:]
    assert sorted(r.webhook_id for r in again) == [r["event_id"] for r in rows[2:]]
    assert all(first[r.webhook_id] == r.body for r in again)


def test_replay_can_target_one_endpoint_and_some_event_types(shop, receiver):
    shop.write_events([event(1, "order.created"), event(2, "order.deleted")])
    shop.subscribe({"id": "a", "url": receiver.url + "/a"}, {"id": "b", "url": receiver.url + "/b"})
    deliver(shop)
    count = replay(shop.settings, T0, endpoint="b", event_types=["*.deleted"], now=T0)
    assert count == 1
    deliver(shop, T0 + timedelta(seconds=1))
    (again,) = receiver.received[4:]
    assert again.path == "/b" and again.type == "order.deleted"


def test_replay_backfills_an_endpoint_added_after_the_events(shop, receiver):
    shop.write_events([event(1), event(2)])
    shop.subscribe({"id": "a", "url": receiver.url + "/a"})
    deliver(shop)
    shop.subscribe(
        {"id": "a", "url": receiver.url + "/a"}, {"id": "new", "url": receiver.url + "/new"}
    )
    assert deliver(shop).attempted == 0  # a new endpoint gets events from now on...
    assert replay(shop.settings, T0, endpoint="new", now=T0) == 2  # ...and history on request
    assert deliver(shop).delivered == 2


def test_replay_leaves_deliveries_still_pending_alone(shop, receiver, script):
    from alter_pipeline.webhooks.receiver import Reply

    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    script.fail(row["event_id"], Reply(500))
    deliver(shop)
    assert replay(shop.settings, T0, now=T0) == 0  # already queued for its retry


def test_replay_of_an_unknown_endpoint_is_a_clear_error(shop, secret):
    shop.subscribe({"id": "shop", "url": "http://127.0.0.1:1/"})
    with pytest.raises(ConfigError, match=r"unknown endpoint 'nope' \(known: shop\)"):
        replay(shop.settings, T0, endpoint="nope")


def test_replay_of_an_unknown_event_type_is_a_clear_error(shop, secret):
    shop.subscribe({"id": "shop", "url": "http://127.0.0.1:1/"})
    with pytest.raises(ConfigError, match=r"unknown event type 'order\.shipped'"):
        replay(shop.settings, T0, event_types=["order.shipped"])
