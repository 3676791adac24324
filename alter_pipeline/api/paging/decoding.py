"""A listing's decoder run in a thread beside the event loop, batching bodies that queue up."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

from alter_pipeline.api.paging.pages import Decoded, Decoder

# A listing's decoder threads (see Listing.decoder), and the bodies one call takes at most.
# One thread: a second one halved the batches and cost ~25% more CPU (contention on 2 cores)
# for no gain in time at 100,000 orders.
DECODE_THREADS = 1
DECODE_BATCH = 16


class Decoding:
    """Runs a listing's decoder in `DECODE_THREADS` threads beside the event loop (Arrow's
    reader releases the GIL), so the loop goes on receiving while pages are decoded. Bodies
    that arrive while every thread is busy wait and go to the next free thread together, up
    to `DECODE_BATCH`: one call for several pages costs less, and an idle decoder still takes
    each page at once."""

    def __init__(self, decoder: Decoder) -> None:
        self._decoder = decoder
        self._pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="alter-decode")
        self._idle = DECODE_THREADS
        self._waiting: list[tuple[bytes, asyncio.Future[Decoded | None]]] = []

    async def decode(self, body: bytes) -> Decoded | None:
        future: asyncio.Future[Decoded | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((body, future))
        self._start()
        return await future

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        while self._idle and self._waiting:
            batch = self._waiting[:DECODE_BATCH]
            del self._waiting[:DECODE_BATCH]
            self._idle -= 1
            done = loop.run_in_executor(self._pool, self._decoder, [body for body, _ in batch])
            done.add_done_callback(functools.partial(self._finish, batch))

    def _finish(
        self, batch: list[tuple[bytes, asyncio.Future[Decoded | None]]], done: asyncio.Future
    ) -> None:
        self._idle += 1
        error = None if done.cancelled() else done.exception()
        results = done.result() if not done.cancelled() and error is None else []
        for n, (_, future) in enumerate(batch):
            if future.done():  # its fetch was cancelled meanwhile
                continue
            if done.cancelled():
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(results[n])
        self._start()
