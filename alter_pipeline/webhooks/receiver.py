"""A local webhook receiver: verifies Standard Webhooks signatures, prints one line per event.

It is what a shop's backend should do, and the pattern to copy:

1. refuse a body over a size limit with 413 before reading it (Content-Length), or as soon as
   a streamed body passes the limit, so memory stays bounded whatever a sender posts;
2. verify the signature over the raw bytes (400 `invalid signature: ...`), then parse the JSON
   (400 `bad JSON: ...`: the sender is genuine but its body is broken; say which);
3. de-duplicate on `webhook-id`: an id already processed gets a 2xx and no second processing
   (deliveries are at least once); only a 2xx answer marks an id processed, so a failure is
   retried; the ids remembered are bounded (the newest `MAX_REMEMBERED_IDS`).

It doubles as the test and demo double: `run_receiver()` serves it from a background thread on
a real loopback socket, keeps every verified request in memory (`keep_history`) and lets a
`behaviour` script the answers (fail, be slow, ask to retry later, say 410 Gone).
`alter-pipeline webhooks listen` keeps no history.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from alter_pipeline.webhooks.signing import iso_utc

# Standard Webhooks payloads are small (one event); 1 MiB leaves room for large orders.
MAX_BODY_BYTES = 1024 * 1024
MAX_REMEMBERED_IDS = 100_000


@dataclass(frozen=True)
class Received:
    """One verified request. `status` is what the receiver answered (None while deciding)."""

    webhook_id: str
    timestamp: int
    type: str
    data: dict[str, Any]
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    path: str = "/"
    status: int | None = None
    duplicate: bool = False  # an id already processed: answered 204, not processed again

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # answer this late (after the sender's timeout, to simulate one)
    body: bytes = b""


Behaviour = Callable[[Received], Reply]


def describe(event: Received) -> str:
    """One line: when, type, ids and the change, e.g. for `webhooks listen`."""
    data = event.data
    parts = [
        iso_utc(datetime.now(UTC)),
        str(event.status or ""),
        event.type,
        f"id={event.webhook_id}",
    ]
    for key in ("order_id", "product_id"):
        if data.get(key) is not None:
            parts.append(f"{key.removesuffix('_id')}={data[key]}")
    change = {k: data[k] for k in ("before", "after") if k in data}
    if change:
        text = json.dumps(change, separators=(",", ":"), default=str)
        parts.append(text if len(text) <= 160 else text[:157] + "...")
    return " ".join(p for p in parts if p)


class Receiver:
    def __init__(
        self,
        secret: str,
        behaviour: Behaviour | None = None,
        on_line: Callable[[str], None] | None = None,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        keep_history: bool = True,
    ) -> None:
        self._webhook = Webhook(secret)
        self.behaviour = behaviour
        self.on_line = on_line
        self.max_body_bytes = max_body_bytes
        self.keep_history = keep_history
        self.received: list[Received] = []
        self.rejected: list[str] = []
        self.processed_ids: OrderedDict[str, None] = OrderedDict()
        self.url = ""
        self._changed = threading.Condition()
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhook_id = headers.get("webhook-id", "?")
        body = await self._read_body(request)
        if body is None:
            return self._reject(webhook_id, 413, f"body larger than {self.max_body_bytes} bytes")
        try:
            message = self._webhook.verify(body, headers)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:  # signed, then unparsable
            return self._reject(webhook_id, 400, f"bad JSON: {error}", prefix="")
        except (WebhookVerificationError, ValueError) as error:
            return self._reject(webhook_id, 400, str(error) or type(error).__name__)
        incoming = Received(
            webhook_id=headers["webhook-id"],
            timestamp=int(float(headers["webhook-timestamp"])),
            type=str(message.get("type", "")) if isinstance(message, dict) else "",
            data=message.get("data", {}) if isinstance(message, dict) else {},
            body=body,
            headers=headers,
            path=request.url.path,
        )
        if self._already_processed(incoming.webhook_id):
            event = dataclasses.replace(incoming, status=204, duplicate=True)
            self._remember(received=event)
            if self.on_line:
                self.on_line(f"duplicate {incoming.webhook_id}: already processed, answered 204")
            return Response(status_code=204)
        reply = self.behaviour(incoming) if self.behaviour else Reply()
        event = dataclasses.replace(incoming, status=reply.status)
        if event.accepted:
            self._mark_processed(event.webhook_id)
        self._remember(received=event)
        if self.on_line:
            self.on_line(describe(event))
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or None once it is known to pass the limit (read no further)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _reject(
        self, webhook_id: str, status: int, reason: str, prefix: str = "invalid signature: "
    ) -> Response:
        reason = " ".join(reason.split())[:200]
        self._remember(rejected=f"{webhook_id}: {reason}")
        if self.on_line:
            self.on_line(f"rejected {webhook_id}: {reason}")
        text = reason if status == 413 else f"{prefix}{reason}"
        return PlainTextResponse(text, status_code=status)

    def _already_processed(self, webhook_id: str) -> bool:
        with self._changed:
            return webhook_id in self.processed_ids

    def _mark_processed(self, webhook_id: str) -> None:
        with self._changed:
            self.processed_ids[webhook_id] = None
            while len(self.processed_ids) > MAX_REMEMBERED_IDS:
                self.processed_ids.popitem(last=False)

    def _remember(self, received: Received | None = None, rejected: str | None = None) -> None:
        with self._changed:
            if self.keep_history and received is not None:
                self.received.append(received)
            if self.keep_history and rejected is not None:
                self.rejected.append(rejected)
            self._changed.notify_all()

    def accepted(self) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.accepted]

    def wait_for(self, count: int, timeout_s: float = 5.0) -> bool:
        """Block until `count` requests were received (verified ones), or time out."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections queue from now on, before the server loop accepts them
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _AnnouncingServer(uvicorn.Server):
    """Calls `on_started` once it serves: the signal handlers are in place by then, so a
    caller that reacts to the announcement (a supervisor's SIGTERM, Ctrl-C) is heard."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_started is not None:
            self.on_started()


def _server(
    app: Starlette, on_started: Callable[[], None] | None = None, **options: Any
) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        **options,
    )
    return _AnnouncingServer(config, on_started)


@contextlib.contextmanager
def run_receiver(
    secret: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    behaviour: Behaviour | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Iterator[Receiver]:
    """Serve a receiver from a background thread; port 0 picks a free port (see `.url`)."""
    receiver = Receiver(secret, behaviour, on_line)
    sock = _bind(host, port)
    server = _server(receiver.app)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="webhook-receiver", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the webhook receiver did not start on {host}:{port}")
        time.sleep(0.01)
    receiver.url = _url(sock)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(
    secret: str,
    host: str = "127.0.0.1",
    port: int = 9000,
    on_line: Callable[[str], None] = print,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C): `alter-pipeline webhooks listen`.
    `on_listening` gets the URL once the server serves, its stop signals handled (port 0
    picks a free one)."""
    receiver = Receiver(secret, on_line=on_line, keep_history=False)
    sock = _bind(host, port)
    url = _url(sock)
    announce = None if on_listening is None else lambda: on_listening(url)
    try:
        _server(receiver.app, announce).run(sockets=[sock])
    finally:
        sock.close()
