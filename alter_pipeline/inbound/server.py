"""The inbound webhook server: one POST route per source of inbound.yaml.

A request is answered 2xx only once it is verified and committed to the inbox:

1. a `Content-Length` over the limit is answered 413 before the body is read; a body that
   streams past the limit (chunked) is answered 413 as soon as it does;
2. the source's verifier checks the signature (and timestamp) on the raw bytes: 401 if it
   fails, nothing stored;
3. the event goes to the inbox's writer thread, which commits whatever requests are waiting in
   one transaction (group commit: one fsync for many requests) and then releases each one;
   its answer is 200 `{"received": true, "duplicate": <bool>}`; 503 if the inbox cannot be
   written, so the platform retries.

An unknown path is 404 and a wrong method 405 (starlette's routing). The server never logs or
echoes a body, a signature or a secret: one line per request names the source, the event id
and the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from alter_pipeline.config import ConfigError, Settings
from alter_pipeline.inbound.config import InboundConfig, Source
from alter_pipeline.inbound.inbox import Inbox, Incoming
from alter_pipeline.inbound.verify import Rejected, Verifier
from alter_pipeline.lake.locate import for_storefront
from alter_pipeline.storefronts import root_of

log = logging.getLogger(__name__)
TOO_LARGE = "too_large"
MAX_BATCH = 512  # requests committed in one transaction at most
COUNTER_FLUSH_S = 1.0  # rejection counters reach the file within this long


class InboxWriter:
    """The only writer of one inbox: a thread committing queued events in batches."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="inbound-inbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    async def store(self, event: Incoming) -> bool:
        """Commit `event`; True if new, False if the inbox already held it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.put((event, future, loop))
        return await future

    def count(self, source: str, counter: str) -> None:
        with self._counts_lock:
            self._counts[(source, counter)] += 1

    def _take_counts(self) -> dict[tuple[str, str], int]:
        with self._counts_lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts

    def _run(self) -> None:
        last_flush = time.monotonic()
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            due = stopping or time.monotonic() - last_flush >= COUNTER_FLUSH_S
            counts = self._take_counts() if due else {}
            if due:
                last_flush = time.monotonic()
            if batch or counts:
                self._commit(batch, counts)

    def _next_batch(self) -> tuple[list[Any], bool]:
        """Wait a moment for one request, then take whatever else is queued (up to MAX_BATCH);
        also whether the stop marker came."""
        batch: list[Any] = []
        try:
            item = self._queue.get(timeout=COUNTER_FLUSH_S)
        except queue.Empty:
            return batch, False
        while item is not None:
            batch.append(item)
            if len(batch) >= MAX_BATCH:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _commit(self, batch: list[Any], counts: dict[tuple[str, str], int]) -> None:
        try:
            results = self.inbox.store([event for event, _, _ in batch], counts)
        except Exception as error:
            log.error(f"inbound: the inbox {self.inbox.path} cannot be written: {error}")
            for _, future, loop in batch:
                loop.call_soon_threadsafe(_settle, future, None, error)
            return
        for (_, future, loop), new in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_settle, future, new, None)


def _settle(future: asyncio.Future[bool], value: bool | None, error: Exception | None) -> None:
    if future.done():  # the client went away meanwhile; the event is stored all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(bool(value))


class InboundApp:
    """The starlette app of a set of sources, each with its verifier and inbox writer."""

    def __init__(
        self,
        config: InboundConfig,
        inboxes: Mapping[str, Inbox],
        secrets: Mapping[str, tuple[str, ...]] | None = None,
        clock: Callable[[], float] = time.time,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.on_line = on_line
        self.verifiers = {
            s.id: Verifier(s, secrets[s.id] if secrets else s.secrets()) for s in config.sources
        }
        by_path: dict[Path, InboxWriter] = {}
        self.writers: dict[str, InboxWriter] = {}
        for source in config.sources:
            inbox = inboxes[source.id]
            self.writers[source.id] = by_path.setdefault(inbox.path, InboxWriter(inbox))
        routes = [Route(s.path, self._handler(s), methods=["POST"]) for s in config.sources]
        self.app = Starlette(routes=routes)

    def start(self) -> None:
        for writer in set(self.writers.values()):
            writer.start()

    def stop(self) -> None:
        for writer in set(self.writers.values()):
            writer.stop()

    def _handler(self, source: Source) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            return await self.handle(source, request)

        return handle

    async def handle(self, source: Source, request: Request) -> Response:
        writer = self.writers[source.id]
        body = await _read_limited(request, self.config.max_body_bytes)
        if body is None:
            writer.count(source.id, f"rejected:{TOO_LARGE}")
            self._line(f"{source.id} rejected 413: body over {self.config.max_body_bytes} bytes")
            return PlainTextResponse("request body too large", status_code=413)
        try:
            verified = self.verifiers[source.id].verify(request.headers, body, self.clock())
        except Rejected as rejection:
            writer.count(source.id, f"rejected:{rejection.counter}")
            self._line(f"{source.id} rejected {rejection.status}: {rejection.reason}")
            return PlainTextResponse(rejection.reason, status_code=rejection.status)
        event = Incoming(source.id, verified.event_id, verified.type, body, time.time())
        try:
            new = await writer.store(event)
        except Exception:
            return PlainTextResponse("inbox unavailable, retry later", status_code=503)
        outcome = "stored" if new else "duplicate (already stored)"
        self._line(f"{source.id} {verified.type or '-'} {verified.event_id} {outcome}")
        return JSONResponse({"received": True, "duplicate": not new})

    def _line(self, text: str) -> None:
        log.info(f"inbound: {text}")
        if self.on_line is not None:
            self.on_line(text)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is known to exceed `limit` (the rest is never read)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


# ---- where each source's events go ---------------------------------------------------------


def open_inboxes(config: InboundConfig, settings: Settings) -> dict[str, Inbox]:
    """Each source's inbox: the lake root of its `storefront` (with storefronts.yaml), else
    the root of $ALTER_STOREFRONT, else the data directory. Sources sharing a root share it."""
    opened: dict[Path, Inbox] = {}
    inboxes: dict[str, Inbox] = {}
    for source in config.sources:
        if source.storefront:
            root = root_of(settings.data_dir, source.storefront)
            if root is None:
                raise ConfigError(
                    f"inbound source {source.id}: storefront {source.storefront} has no lake "
                    f"yet: run `alter-pipeline sync --storefront {source.storefront}` first"
                )
        else:
            root = for_storefront(settings).data_dir
        path = root / "inbound" / "inbox.sqlite"
        if path not in opened:
            opened[path] = Inbox(path)
        inboxes[source.id] = opened[path]
    return inboxes


# ---- running it ---------------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # an access log would show query strings; ours names events only
        lifespan="off",
        timeout_graceful_shutdown=5,
        # a client that sends its body slowly must not hold a connection for ever
        timeout_keep_alive=5,
    )
    return uvicorn.Server(config)


class RunningInbound:
    def __init__(self, app: InboundApp, url: str) -> None:
        self.inbound = app
        self.url = url


@contextlib.contextmanager
def run_inbound_server(
    app: InboundApp, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningInbound]:
    """Serve from a background thread (tests, the demo, the benchmark); port 0: a free one.
    On exit the server stops, then the writers commit what is queued and the counters."""
    sock = _bind(host, port)
    server = _uvicorn(app.app)
    app.start()
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="inbound-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            app.stop()
            raise RuntimeError(f"the inbound server did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield RunningInbound(app, _url(sock))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        app.stop()


def serve(
    app: InboundApp,
    host: str = "127.0.0.1",
    port: int = 8686,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM (uvicorn handles both and lets the
    requests in flight finish); then the writers commit what is queued and the counters."""
    sock = _bind(host, port)
    app.start()
    # uvicorn re-raises the signal it caught once it has stopped; SIGTERM's default action
    # would end the process before the writers flush, so it becomes SystemExit here.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if on_listening is not None:
            on_listening(_url(sock))
        _uvicorn(app.app).run(sockets=[sock])
    finally:
        sock.close()
        app.stop()
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
