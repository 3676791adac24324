"""Running the emulator: `serve(config)` blocks (the CLI), `run_emulator(config)` runs it in a
background thread on a free loopback port for the length of a `with` block (tests, demos).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import uvicorn
from starlette.applications import Starlette

from alter_pipeline.contract import KEY_HEADER, TOKEN_HEADER
from alter_pipeline.emulator.app import create_app
from alter_pipeline.emulator.config import (
    BASE_PATH,
    Credentials,
    EmulatorConfig,
    resolve_credentials,
)
from alter_pipeline.emulator.faults import Fault
from alter_pipeline.emulator.stats import RequestCounters
from alter_pipeline.emulator.store import Store

STARTUP_TIMEOUT_S = 30.0


class _Server(uvicorn.Server):
    """uvicorn's server, able to stop at once from another thread and to announce readiness.

    The stock main loop polls `should_exit` every 100 ms; waiting on an event instead makes a
    test fixture's teardown take milliseconds.
    """

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await super().startup(sockets)
        if self.started:
            self._on_ready()

    async def main_loop(self) -> None:
        assert self._wake is not None
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    def stop_soon(self) -> None:
        """Thread-safe: ask the server to shut down now."""
        self.should_exit = True
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._wake.set)


@dataclass
class RunningEmulator:
    """A started emulator: where it listens, what it accepts, and its state."""

    base_url: str
    key: str = field(repr=False)
    token: str = field(repr=False)
    store: Store
    config: EmulatorConfig
    app: Starlette = field(repr=False)
    _server: _Server = field(repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        """The two authentication headers, ready for an HTTP client."""
        return {KEY_HEADER: self.key, TOKEN_HEADER: self.token}

    @property
    def root_url(self) -> str:
        """`http://host:port`, where `/__emulator/stats` lives."""
        return self.base_url.removesuffix(BASE_PATH)

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._server.should_exit

    @property
    def counters(self) -> RequestCounters:
        return self.store.counters

    def set_faults(self, faults: Sequence[Fault]) -> None:
        """Replace the fault modes from the next request on (an empty list: no faults)."""
        self.app.state.runtime.faults = list(faults)

    def pause_live(self) -> None:
        """Live mode: stop the shoppers; on return no change is under way."""
        shoppers = self.app.state.runtime.shoppers
        if shoppers is not None:
            shoppers.pause()

    def resume_live(self) -> None:
        shoppers = self.app.state.runtime.shoppers
        if shoppers is not None:
            shoppers.resume()

    def reset(self) -> Store:
        """Fresh state without a restart: a newly generated store (same config), zeroed
        counters, a full rate-limit bucket, fault draws from the start. Returns the store."""
        store = Store(self.config)
        store.public_url = self.store.public_url
        self.app.state.runtime.reset(store)
        self.store = store
        return store

    def stop(self, *, wait: bool = True) -> None:
        """Shut down; with `wait`, return once the server thread has ended (~0.1 s, most of it
        uvicorn's fixed grace period). `join()` waits for a stop begun with wait=False."""
        self._server.stop_soon()
        if wait:
            self.join()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def build(config: EmulatorConfig) -> tuple[Store, Credentials, Starlette]:
    store = Store(config)
    credentials = resolve_credentials(config)
    return store, credentials, create_app(store, credentials)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto says TCP, and without it Nagle's algorithm holds back every response body
    # until the client's delayed ACK, ~40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{BASE_PATH}"


def _uvicorn_config(app: Starlette) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="httptools",
        # Plain asyncio, also where uvloop is installed: measured with 100 kB pages, uvloop
        # served half as many pages a second (benchmarks/emulator_throughput.py).
        loop="asyncio",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )


def start_emulator(config: EmulatorConfig | None = None) -> RunningEmulator:
    """Start an emulator in a daemon thread and return once it accepts connections."""
    config = config or EmulatorConfig()
    store, credentials, app = build(config)
    sock = _bind(config.host, config.port)
    base_url = _base_url(sock)
    if config.public_url is None:
        store.public_url = base_url
    ready = threading.Event()
    server = _Server(_uvicorn_config(app), ready.set)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="alter-emulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not ready.wait(0.005):
        if not thread.is_alive() or time.monotonic() > deadline:
            server.stop_soon()
            sock.close()
            raise RuntimeError(f"the emulator did not start on {base_url}")
    # `sock` now belongs to the server's event loop, which closes it at shutdown.
    return RunningEmulator(
        base_url, credentials.key, credentials.token, store, config, app, server, thread
    )


@contextlib.contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, **changes: object
) -> Iterator[RunningEmulator]:
    """`with run_emulator(EmulatorConfig(orders=500)) as emu:` -> emu.base_url, key, token, store.

    Keyword `changes` override fields of `config`, e.g. `run_emulator(latency_ms=50)`.
    """
    config = replace(config or EmulatorConfig(), **changes)  # type: ignore[arg-type]
    emulator = start_emulator(config)
    try:
        yield emulator
    finally:
        emulator.stop()


def serve(config: EmulatorConfig) -> None:
    """Serve in the foreground until interrupted (Ctrl-C)."""
    started = time.perf_counter()
    store, credentials, app = build(config)
    sock = _bind(config.host, config.port)
    base_url = _base_url(sock)
    if config.public_url is None:
        store.public_url = base_url
    generated = time.perf_counter() - started

    def announce() -> None:
        print(f"Alter API emulator listening on {base_url}", flush=True)
        print(
            f"  {store.order_count()} orders, {len(store.catalog.products)} products "
            f"(seed {config.seed}, generated in {generated:.2f} s); "
            f"stats at {base_url.removesuffix(BASE_PATH)}/__emulator/stats",
            flush=True,
        )
        if credentials.is_demo:
            print(f"  demo credentials: {KEY_HEADER}: {credentials.key}", flush=True)
            print(f"                    {TOKEN_HEADER}: {credentials.token}", flush=True)
            print(
                f"  export ALTER_API_BASE_URL={base_url} ALTER_API_KEY={credentials.key} "
                f"ALTER_API_TOKEN={credentials.token}",
                flush=True,
            )
        else:
            print("  credentials: the configured key and token", flush=True)
        print(f"  scopes: {', '.join(config.scopes) or '(none)'}", flush=True)

    server = _Server(_uvicorn_config(app), announce)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(1)
