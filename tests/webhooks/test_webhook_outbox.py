"""The outbox: idempotent ingestion with a cursor, leases, concurrent deliverers."""

import subprocess
import sys
import threading
from collections import Counter

from webhook_helpers import T0, event

from alter_pipeline.webhooks import Outbox, deliver_due, ingest, outbox_path
from alter_pipeline.webhooks.outbox import QueuedEvent
from alter_pipeline.webhooks.receiver import Reply


def queued(sequence, entity=None):
    return QueuedEvent(
        f"e{sequence}", "order.created", sequence, entity or f"order:{sequence}", 0.0, b"{}"
    )


def test_ingest_queues_each_matching_endpoint_once_and_advances_the_cursor(shop, secret):
    shop.write_events([event(1, "order.created"), event(2, "product.updated", product_id=3)])
    shop.subscribe(
        {"id": "a", "url": "http://127.0.0.1:1/", "events": ["*"]},
        {"id": "b", "url": "http://127.0.0.1:1/", "events": ["product.*"]},
    )
    assert ingest(shop.settings, now=T0) == 3
    assert ingest(shop.settings, now=T0) == 0  # nothing past the cursor
    with Outbox.open(shop.settings.data_dir) as outbox:
        assert outbox.cursor() == 2
        assert outbox.counts()["a"].pending == 2 and outbox.counts()["b"].pending == 1


def test_ingest_takes_only_events_past_the_cursor(shop, secret):
    shop.subscribe({"id": "a", "url": "http://127.0.0.1:1/"})
    shop.write_events([event(1), event(2)])
    assert ingest(shop.settings, now=T0) == 2
    shop.write_events([event(3)])  # a later snapshot carries 1 and 2 over and adds 3
    assert ingest(shop.settings, now=T0) == 1


def test_ingest_before_any_snapshot_queues_nothing(shop, secret):
    shop.subscribe({"id": "a", "url": "http://127.0.0.1:1/"})
    assert ingest(shop.settings, now=T0) == 0


def test_enqueue_is_idempotent_even_when_the_cursor_is_not_moved(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as outbox:
        fanout = [(queued(1), ["a", "b"])]
        assert outbox.enqueue(fanout, now=0.0) == 2
        assert outbox.enqueue(fanout, now=0.0) == 0


def test_the_outbox_is_sqlite_in_wal_mode_under_the_data_dir(shop):
    with Outbox.open(shop.settings.data_dir) as outbox:
        assert outbox.path == shop.settings.data_dir / "webhooks" / "outbox.sqlite"
        assert outbox.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox_path(shop.settings.data_dir).is_file()


CLAIMER = """
import sys
from pathlib import Path
from alter_pipeline.webhooks.outbox import Outbox
print("ready", flush=True)
sys.stdin.readline()  # both start claiming together
with Outbox(Path(sys.argv[1])) as outbox:
    while batch := outbox.claim(1.0, {"a": 7}, {"a": 60.0}):
        print(*(c.event_id for c in batch), flush=True)
"""


def test_two_processes_claiming_at_once_never_get_the_same_delivery(tmp_path):
    path = tmp_path / "o.sqlite"
    with Outbox(path) as outbox:
        outbox.enqueue([(queued(i), ["a"]) for i in range(1, 301)], now=0.0)
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for claimer in claimers:
        assert claimer.stdout is not None and claimer.stdout.readline().strip() == "ready"
    outputs = [claimer.communicate("go\n", timeout=60)[0] for claimer in claimers]
    claimed = [output.split() for output in outputs]
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == 300


def test_an_expired_lease_is_claimed_again_and_the_stale_claim_cannot_settle(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as outbox:
        outbox.enqueue([(queued(1), ["a"])], now=0.0)
        (first,) = outbox.claim(10.0, {"a": 1}, {"a": 45.0})
        assert outbox.claim(54.0, {"a": 1}, {"a": 45.0}) == []  # lease runs to 55
        (second,) = outbox.claim(56.0, {"a": 1}, {"a": 45.0})
        assert second.attempt == 2 and second.event_id == first.event_id
        assert outbox.record_delivered(first, 57.0, 204, 1.0) is False
        assert outbox.record_delivered(second, 57.0, 204, 1.0) is True
        assert outbox.delivery("a", "e1")["state"] == "delivered"
        assert len(outbox.attempts_of("e1")) == 2  # both attempts are logged


def test_a_later_event_of_the_same_order_waits_for_the_earlier_one(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as outbox:
        outbox.enqueue(
            [(queued(1, "order:9"), ["a"]), (queued(2, "order:9"), ["a"]), (queued(3), ["a"])],
            now=0.0,
        )
        claims = outbox.claim(1.0, {"a": 10}, {"a": 45.0})
        assert [c.event_id for c in claims] == ["e1", "e3"]
        outbox.record_failed(
            claims[0], 2.0, status_code=500, latency_ms=1.0, error="HTTP 500", retry_at=100.0
        )
        outbox.record_delivered(claims[1], 2.0, 204, 1.0)
        assert outbox.claim(50.0, {"a": 10}, {"a": 45.0}) == []  # e2 waits while e1 retries
        assert [c.event_id for c in outbox.claim(100.0, {"a": 10}, {"a": 45.0})] == ["e1"]


def test_two_deliverers_running_at_once_send_each_event_once(shop, receiver, script):
    rows = [event(i, order_id=i % 7) for i in range(1, 61)]
    shop.write_events(rows)
    shop.subscribe({"id": "shop", "url": receiver.url})
    ingest(shop.settings, now=T0)
    script.default = Reply(204, delay_s=0.02)
    reports = []
    threads = [
        threading.Thread(target=lambda: reports.append(deliver_due(shop.settings, now=T0)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = Counter(r.webhook_id for r in receiver.received)
    assert set(sent.values()) == {1} and len(sent) == 60
    assert sum(r.delivered for r in reports) == 60
