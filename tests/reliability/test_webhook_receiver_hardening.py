"""The webhook receiver as the pattern users copy (issue 13, point 7): a body limit (413, also
for a streamed body), bounded memory in `webhooks listen`, de-duplication on `webhook-id`, and
a signed body that is not JSON reported as bad JSON, not as a bad signature."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from alter_pipeline.webhooks.receiver import MAX_BODY_BYTES, Received, Reply, run_receiver
from alter_pipeline.webhooks.signing import signed_headers


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def event_body(pad: int = 0) -> bytes:
    return b'{"type":"order.created","data":{"order_id":7,"pad":"' + b"a" * pad + b'"}}'


def signed(secret: str, webhook_id: str, body: bytes) -> dict[str, str]:
    return signed_headers(secret, webhook_id, body, datetime.now(UTC))


@pytest.fixture
def listen() -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """`alter-pipeline webhooks listen` in a subprocess: (process, url, secret)."""
    secret = new_secret()
    env = {**os.environ, "SHOP_WEBHOOK_SECRET": secret, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "alter_pipeline.cli", "webhooks", "listen", "--port", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = re.search(r"listening on (http://\S+?)/ ", process.stdout.readline())
        assert url, "no banner"
        yield process, url.group(1), secret
    finally:
        process.terminate()
        process.wait(10)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def test_a_signed_50_mb_body_is_refused_with_413_and_memory_stays_flat(listen) -> None:
    process, url, secret = listen
    body = event_body(50 * 1024 * 1024)
    headers = signed(secret, "evt_big", body)  # refused before the signature is checked
    before = rss_mb(process.pid)
    for _ in range(2):  # four 50 MB bodies in all
        declared = httpx.post(url + "/hooks", content=body, headers=headers, timeout=30)
        streamed = httpx.post(  # no Content-Length: the limit applies while reading
            url + "/hooks", content=iter([body[i : i + 2**20] for i in range(0, len(body), 2**20)]),
            headers=headers, timeout=30,
        )  # fmt: skip
        assert (declared.status_code, streamed.status_code) == (413, 413)
    assert rss_mb(process.pid) - before < 20  # it was +395 MB after four


def test_listen_keeps_no_body_it_accepted(listen) -> None:
    process, url, secret = listen
    body = event_body(MAX_BODY_BYTES - 100)
    with httpx.Client(timeout=30) as client:
        client.post(url + "/hooks", content=body, headers=signed(secret, "evt_warm", body))
        before = rss_mb(process.pid)
        for n in range(24):
            answer = client.post(
                url + "/hooks", content=body, headers=signed(secret, f"e{n}", body)
            )
            assert answer.status_code == 204
    assert rss_mb(process.pid) - before < 12  # 24 MB were accepted


def test_the_same_signed_message_twice_is_processed_once() -> None:
    secret, processed = new_secret(), []

    def behaviour(event: Received) -> Reply:
        processed.append(event.webhook_id)
        return Reply(204)

    with run_receiver(secret, behaviour=behaviour) as receiver:
        body = event_body()
        headers = signed(secret, "evt_twice", body)
        answers = [httpx.post(receiver.url, content=body, headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [204, 204]
    assert processed == ["evt_twice"]
    assert [r.duplicate for r in receiver.received] == [False, True]


def test_a_failed_attempt_is_processed_again_when_retried() -> None:
    secret, answers = new_secret(), iter([500, 204])

    with run_receiver(secret, behaviour=lambda event: Reply(next(answers))) as receiver:
        body = event_body()
        headers = signed(secret, "evt_retry", body)
        statuses = [
            httpx.post(receiver.url, content=body, headers=headers).status_code for _ in "ab"
        ]
    assert statuses == [500, 204]
    assert [r.duplicate for r in receiver.received] == [False, False]


def test_a_signed_body_that_is_not_json_is_bad_json_not_a_bad_signature() -> None:
    secret, lines = new_secret(), []
    with run_receiver(secret, on_line=lines.append) as receiver:
        body = b"this is not json"
        answer = httpx.post(receiver.url, content=body, headers=signed(secret, "evt_text", body))
        forged = httpx.post(receiver.url, content=body, headers=signed(new_secret(), "evt_f", body))
    assert answer.status_code == 400 and answer.text.startswith("bad JSON: ")
    assert forged.status_code == 400 and forged.text.startswith("invalid signature: ")
    assert lines[0].startswith("rejected evt_text: bad JSON")
