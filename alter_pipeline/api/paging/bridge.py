"""The sync iterator over a listing: a `Pager` on a background event loop, pages handed over
through a bounded queue (at most about `(PAGES_PER_REQUEST + 1) * concurrency` pages exist at
once: those under way in the pager, and the queue's)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from alter_pipeline.api import _wire
from alter_pipeline.api.paging.pager import Emit, Pager
from alter_pipeline.api.paging.pages import FastPage, Listing, Page
from alter_pipeline.api.paging.sender import AsyncSender
from alter_pipeline.api.retry import RetryPolicy, Timeouts

logger = logging.getLogger("alter_pipeline.api")


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_DONE = object()
_POLL = 0.05  # seconds between checks of the stop flag while blocked


@dataclass(frozen=True, slots=True)
class PagerSettings:
    base_url: str
    secrets: _wire.Secrets
    timeouts: Timeouts
    retry: RetryPolicy
    stats: _wire.Counters
    user_agent: str
    # Tests swap in an httpx.MockTransport to simulate a list that changes while paged.
    transport: httpx.AsyncBaseTransport | None = None


def iter_pages(
    settings: PagerSettings, listing: Listing, *, page_size: int, concurrency: int
) -> Iterator[Page | FastPage]:
    """Run a `Pager` on a background event loop; yield its pages as they arrive."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=concurrency)
    stop = threading.Event()

    def put(item: Any) -> bool:
        # Blocking put that gives up once the consumer has gone away.
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    async def emit(page: Page | FastPage) -> None:
        try:
            handoff.put_nowait(page)
        except queue.Full:
            # Wait in a worker thread: a blocked event loop would stall in-flight reads
            # (and trip their read timeouts) while the consumer writes its Parquet files.
            if not await asyncio.to_thread(put, page):
                raise asyncio.CancelledError from None

    def thread_main() -> None:
        try:
            asyncio.run(_run_until_stopped(settings, listing, page_size, concurrency, emit, stop))
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(_Failed(error))
        else:
            put(_DONE)

    worker = threading.Thread(target=thread_main, name=f"alter-pager{listing.path}", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


async def _run_until_stopped(
    settings: PagerSettings,
    listing: Listing,
    page_size: int,
    concurrency: int,
    emit: Emit,
    stop: threading.Event,
) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as clients:
        sender = AsyncSender(
            [
                await clients.enter_async_context(
                    httpx.AsyncClient(
                        base_url=settings.base_url,
                        timeout=settings.timeouts.to_httpx(),
                        limits=limits,
                        headers={"user-agent": settings.user_agent, "accept": "application/json"},
                        transport=settings.transport,
                        verify=_wire.ssl_context(),
                    )
                )
                for _ in range(concurrency)
            ],
            settings.secrets,
            settings.retry,
            settings.stats,
        )
        pager = Pager(
            sender,
            listing,
            page_size=page_size,
            concurrency=concurrency,
            emit=emit,
            stats=settings.stats,
        )
        task = asyncio.create_task(pager.run())
        started = time.monotonic()
        while not task.done():
            await asyncio.wait({task}, timeout=_POLL)
            if stop.is_set():  # the consumer stopped iterating: abandon the listing
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return
        task.result()
        logger.debug("%s listed in %.2fs", listing.path, time.monotonic() - started)
