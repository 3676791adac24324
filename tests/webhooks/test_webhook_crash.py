"""At-least-once across crashes: a delivery sent but not recorded goes out again, same id."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta

import pytest
from standardwebhooks import Webhook
from webhook_helpers import T0, event

from alter_pipeline.webhooks import Outbox, deliver_due, ingest
from alter_pipeline.webhooks.receiver import Reply


class Crash(Exception):
    """Stands for the process dying between the HTTP answer and the database write."""


def test_a_crash_between_send_and_record_resends_the_same_webhook_id(shop, receiver, secret):
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    ingest(shop.settings, now=T0)

    def crash(claim, outcome):
        raise Crash(claim.event_id)

    with pytest.raises(Crash):
        deliver_due(shop.settings, now=T0, after_send=crash)
    assert [r.status for r in receiver.received] == [204]
    # While the dead run's lease lasts, nobody sends the row concurrently...
    assert deliver_due(shop.settings, now=T0 + timedelta(seconds=10)).attempted == 0
    # ...and once it expires, the row is claimed again and resent under the same id.
    assert deliver_due(shop.settings, now=T0 + timedelta(minutes=1)).delivered == 1
    assert [r.webhook_id for r in receiver.received] == [row["event_id"]] * 2
    for got in receiver.received:
        Webhook(secret).verify(got.body, got.headers)
    assert receiver.received[0].body == receiver.received[1].body


KILLED_DELIVERER = textwrap.dedent(
    """
    from datetime import datetime
    from alter_pipeline.config import Settings
    from alter_pipeline.webhooks import deliver_due, ingest

    now = datetime.fromisoformat({now!r})
    settings = Settings.from_env()
    ingest(settings, now=now)
    print("ingested", flush=True)
    deliver_due(settings, now=now)
    print("finished", flush=True)  # never reached: SIGKILL arrives while the POST is open
    """
)


def test_a_deliverer_killed_mid_request_resends_the_same_webhook_id(shop, receiver, script):
    row = event(1)
    shop.write_events([row])
    shop.subscribe({"id": "shop", "url": receiver.url})
    process: dict[str, subprocess.Popen] = {}
    killed = threading.Event()

    def kill_sender(incoming):
        if not killed.is_set():
            os.kill(process["p"].pid, signal.SIGKILL)
            killed.set()
            return Reply(204, delay_s=0.2)  # answered only after the sender is gone
        return None

    script.rule = kill_sender
    process["p"] = subprocess.Popen(
        [sys.executable, "-c", KILLED_DELIVERER.format(now=T0.isoformat())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    out, err = process["p"].communicate(timeout=30)
    assert process["p"].returncode == -signal.SIGKILL, err
    assert out.split() == ["ingested"]
    with Outbox.open(shop.settings.data_dir) as outbox:
        assert outbox.delivery("shop", row["event_id"])["state"] == "pending"
    assert deliver_due(shop.settings, now=T0 + timedelta(minutes=1)).delivered == 1
    assert [r.webhook_id for r in receiver.received] == [row["event_id"]] * 2
