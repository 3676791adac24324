"""The local receiver: verifies signatures, answers 204, prints one line per event."""

from datetime import UTC, datetime

import httpx
from webhook_helpers import new_secret

from alter_pipeline.webhooks.receiver import run_receiver
from alter_pipeline.webhooks.signing import signed_headers

BODY = b'{"type":"order.created","timestamp":"2026-11-26T10:00:00Z","data":{"order_id":7}}'


def test_the_receiver_accepts_a_valid_signature_and_prints_one_line():
    secret, lines = new_secret(), []
    with run_receiver(secret, on_line=lines.append) as receiver:
        headers = signed_headers(secret, "evt_1", BODY, datetime.now(UTC))
        response = httpx.post(receiver.url + "/hooks", content=BODY, headers=headers)
    assert response.status_code == 204
    (line,) = lines
    assert " 204 order.created id=evt_1 order=7" in line and "\n" not in line
    assert receiver.received[0].data == {"order_id": 7}


def test_the_receiver_rejects_a_bad_signature_with_400():
    secret, lines = new_secret(), []
    with run_receiver(secret, on_line=lines.append) as receiver:
        forged = signed_headers(new_secret(), "evt_1", BODY, datetime.now(UTC))
        bad = httpx.post(receiver.url, content=BODY, headers=forged)
        unsigned = httpx.post(receiver.url, content=BODY)
    assert (bad.status_code, unsigned.status_code) == (400, 400)
    assert receiver.received == [] and len(receiver.rejected) == 2
    assert lines[0] == "rejected evt_1: No matching signature found"


def test_the_receiver_binds_loopback_by_default():
    with run_receiver(new_secret()) as receiver:
        assert receiver.url.startswith("http://127.0.0.1:")


def test_listen_serves_in_the_foreground_and_prints_each_event(secret):
    import os
    import re
    import signal
    import subprocess
    import sys

    command = [
        sys.executable,
        "-c",
        "from alter_pipeline.cli.webhooks import webhooks_app; webhooks_app()",
        "listen",
        "--port",
        "0",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", banner).group(1)
        headers = signed_headers(secret, "evt_9", BODY, datetime.now(UTC))
        assert httpx.post(url + "/hooks", content=BODY, headers=headers).status_code == 204
        line = process.stdout.readline()
        assert " 204 order.created id=evt_9 order=7" in line
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = process.communicate(timeout=10)
    assert process.returncode == 0 and rest.strip() == "stopped"
