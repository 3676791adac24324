"""Concurrent, verified paging over `GET /customer-orders` and `GET /products`.

How one listing runs (async httpx, at most `concurrency` requests in flight):

1. Read the first page (offset 0). It gives `total`.
2. Fetch the remaining pages in parallel. Orders are read in ascending id order
   (`order_by=id&direction=ASC`): new orders get larger ids, so inserts land after everything
   already planned and never shift a page. Consecutive pages overlap by one row (offsets
   0, 49, 98, ... with limit 50): with nothing deleted, the last row of one page is the first
   row of the next.
3. Every page proves a closed id range was complete at the moment it was read: from its first
   to its last id, from -inf when it starts at offset 0, to +inf when it is short (the end of
   the list). A deletion before a page's offset shifts the rows left, so the next page starts
   past where the previous one ended: the union of ranges gets a hole. Each hole is re-read
   (bounded) by walking to the page that holds its lower id: start at that id's rank among the
   ids seen, less the shift the latest re-read observed; step back (at least doubling) while a
   page starts past it, forward by a page while a full page ends before it. Once the ranges
   join up from -inf to +inf, any order that existed throughout the listing is in some page,
   whatever was deleted meanwhile.
4. Rows are deduplicated by id across pages (overlaps and shifted re-reads repeat rows).
5. `total` is read again at the end; if fewer unique ids were yielded, orders were added after
   the tail was read: the tail is re-read, then everything once more, and if the numbers still
   disagree `IncompleteListingError` names them.

Products: the contract only says their `order_by` is "whitelisted server-side". The pager asks
for `order_by=id&direction=ASC`; if the server refuses that with a 4xx, or returns ids out of
order, it falls back to plain offset paging without range proofs, and relies on deduplication
plus the `total` check (with full re-reads) alone.

Yielded pages follow completion order, not offset order: each `Page` carries its `offset` and
only the rows not yielded before (so a page may be shorter than the limit). The first page is
always yielded, even when empty, so a consumer always learns `total`.

The sync iterator runs the loop in a background thread and hands pages over through a bounded
queue: at most about `2 * concurrency` pages exist at once, however long the listing.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx

from alter_pipeline.api import _wire, errors
from alter_pipeline.api.retry import RetryPolicy, RetryState, Safety, Timeouts

logger = logging.getLogger("alter_pipeline.api")

_NEG_INF = float("-inf")
_POS_INF = float("inf")
# Re-reads of the whole listing when `total` says rows are missing; and how many times.
_FINAL_ROUNDS = 3
# A listing's decoder threads (see Listing.decoder), and the bodies one call takes at most.
# One thread: a second one halved the batches and cost ~25% more CPU (contention on 2 cores)
# for no gain in time at 100,000 orders.
DECODE_THREADS = 1
DECODE_BATCH = 16


@dataclass(frozen=True, slots=True)
class Page:
    """Rows of one listing page not yielded before, as raw JSON dicts (numbers as Decimal)."""

    offset: int
    items: list[dict[str, Any]]
    total: int


class Decoded(Protocol):
    """What a listing's fast decoder makes of a page body: each row's id (None where a row
    has no integer id) and the listing's `total`; the rest is the decoder's own."""

    ids: list[int | None]
    total: int


Decoder = Callable[[list[bytes]], list[Decoded | None]]
"""Reads page bodies without Python objects per row: for each body its `Decoded`, or None (that
page is then decoded as JSON). Gets several bodies at once when pages arrive faster than it
reads them."""


@dataclass(frozen=True, slots=True)
class FastPage:
    """A page a listing's decoder read: `decoded` holds every row of the page and `keep` the
    positions of the rows not yielded before. `items` decodes them as JSON (the same dicts a
    `Page` holds), for a consumer that cannot use `decoded`."""

    offset: int
    total: int
    decoded: Decoded
    keep: list[int]
    body: bytes
    envelope: str

    @property
    def items(self) -> list[dict[str, Any]]:
        rows = json.loads(self.body, parse_float=Decimal)[self.envelope]["items"]
        return [rows[i] for i in self.keep]


@dataclass(frozen=True, slots=True)
class _Fetched:
    """One page as read: each row's id (None: no integer id), `total`, and the rows (`items`,
    or `decoded` with `body` when the fast decoder read it)."""

    ids: list[int | None]
    total: int
    items: list[Any] | None = None
    decoded: Decoded | None = None
    body: bytes = b""

    def page(self, offset: int, keep: list[int], envelope: str) -> Page | FastPage:
        if self.decoded is not None:
            return FastPage(offset, self.total, self.decoded, keep, self.body, envelope)
        assert self.items is not None
        return Page(offset=offset, items=[self.items[i] for i in keep], total=self.total)


@dataclass(frozen=True, slots=True)
class Listing:
    """Which list endpoint to page, with its filters (already wire-formatted)."""

    path: str
    envelope: str  # "order" or "products": the key that holds {"items", "total"}
    scope: str
    filters: dict[str, str] = field(default_factory=dict)
    by_id: bool = True  # ask for ascending id order (and use range proofs)
    # When the server refuses id ordering with a 4xx: page in its default order instead.
    by_id_optional: bool = False
    # Reads page bodies into `FastPage`s where it can (e.g. lake.fast_flatten's Arrow reader).
    decoder: Decoder | None = None


# ---- async sending with retries --------------------------------------------------------------


class AsyncSender:
    """Async twin of the sync client's request loop: same retry rules, same errors, same stats.

    Sends through a set of clients of one connection each, one client per request in flight:
    httpcore checks every idle connection of a pool for expiry on each request (a socket
    peek and a peername through anyio's attribute machinery), which with one pool of 8
    connections cost about a fifth of the pager's CPU time."""

    def __init__(
        self,
        clients: list[httpx.AsyncClient],
        secrets: _wire.Secrets,
        policy: RetryPolicy,
        stats: _wire.Counters,
    ) -> None:
        self._clients = clients
        self._free = list(clients)
        self._secrets = secrets
        self._policy = policy
        self._stats = stats

    def retry_state(self, call: _wire.Call, safety: Safety = Safety.IDEMPOTENT) -> RetryState:
        """The attempts of one call, shared by its sends and the judging of its bodies."""
        return RetryState(self._policy, call.method, call.path, safety)

    async def decode(self, state: RetryState, reply: _wire.Reply, call: _wire.Call) -> Any:
        """The reply's JSON, or `RetryIn` (already waited) to send it again: see `_wire`."""
        data = _wire.decode_or_retry(state, reply, call, self._secrets)
        if isinstance(data, _wire.RetryIn):
            self._stats.add(retries=1)
            await asyncio.sleep(data.seconds)
        return data

    async def ok(self, state: RetryState, call: _wire.Call) -> _wire.Reply:
        """The 2xx reply, body not decoded; any other status raises its typed error."""
        reply = await self.send(state, call)
        if not 200 <= reply.status < 300:
            raise _wire.error_for(reply, call, self._secrets)
        return reply

    async def send(self, state: RetryState, call: _wire.Call) -> _wire.Reply:
        while True:
            state.begin()
            outcome = await self._attempt(call)
            step = _wire.settle(state, outcome, call, self._secrets)
            if isinstance(step, _wire.Reply):
                return step
            self._stats.add(retries=1)
            await asyncio.sleep(step)

    async def _attempt(self, call: _wire.Call) -> _wire.Reply | Exception:
        # More requests in flight than clients cannot happen in a pager; if it did, they
        # would share the first client's connection (its pool queues them).
        http = self._free.pop() if self._free else self._clients[0]
        try:
            return await self._exchange(http, call)
        finally:
            if http not in self._free:
                self._free.append(http)

    async def _exchange(self, http: httpx.AsyncClient, call: _wire.Call) -> _wire.Reply | Exception:
        request = call.build(http, self._secrets)
        self._stats.add(requests=1)
        try:
            response = await http.send(request, stream=True)
        except httpx.HTTPError as error:
            return error
        chunks: list[bytes] = []
        try:
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
        except httpx.DecodingError as error:
            return error
        except httpx.HTTPError as error:
            partial = b"".join(chunks)
            return _wire.BodyIncomplete(response.status_code, response.headers, partial, error)
        finally:
            await response.aclose()
        body = b"".join(chunks)
        self._stats.add(nbytes=len(body))
        return _wire.Reply(response.status_code, response.headers, body)


# ---- decoding beside the event loop ----------------------------------------------------------


class _Decoding:
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


# ---- range proofs ----------------------------------------------------------------------------


class Coverage:
    """Closed id ranges proven complete; -inf / +inf mean 'from the start' / 'to the end'.

    Ids are integers, so ranges [a, b] and [b + 1, c] join: there is no id between them.
    """

    def __init__(self) -> None:
        self._spans: list[tuple[float, float]] = []
        self._dirty = False

    def add(self, start: float, end: float) -> None:
        self._spans.append((start, end))
        self._dirty = True

    def spans(self) -> list[tuple[float, float]]:
        if self._dirty:
            merged: list[tuple[float, float]] = []
            for start, end in sorted(self._spans):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            self._spans, self._dirty = merged, False
        return self._spans

    def holes(self) -> list[tuple[float, float]]:
        """Open id intervals not proven complete, in ascending order."""
        spans = self.spans()
        if not spans:
            return [(_NEG_INF, _POS_INF)]
        found = [(spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)]
        if spans[0][0] > _NEG_INF:
            found.insert(0, (_NEG_INF, spans[0][0]))
        if spans[-1][1] < _POS_INF:
            found.append((spans[-1][1], _POS_INF))
        return found

    def reopen_tail(self, last_id: float) -> None:
        """Forget that the end of the list was reached (rows may have been added since)."""
        spans = self.spans()
        if spans and spans[-1][1] == _POS_INF:
            spans[-1] = (spans[-1][0], last_id)


def page_span(offset: int, limit: int, ids: list[int], size: int) -> tuple[float, float] | None:
    """The id range a page of `size` rows (valid `ids` among them) proves complete."""
    if not ids:
        # An empty first page proves the list was empty; a later empty page proves nothing.
        return (_NEG_INF, _POS_INF) if offset == 0 and size == 0 else None
    start = _NEG_INF if offset == 0 else ids[0]
    end = _POS_INF if size < limit else ids[-1]
    return (start, end)


def _row_id(row: Any) -> int | None:
    value = row.get("id") if isinstance(row, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---- the pager -------------------------------------------------------------------------------

Emit = Callable[[Page | FastPage], Awaitable[None]]


class Pager:
    """One listing run. Not reusable; create one per listing."""

    def __init__(
        self,
        sender: AsyncSender,
        listing: Listing,
        *,
        page_size: int,
        concurrency: int,
        emit: Emit,
        stats: _wire.Counters,
    ) -> None:
        self._sender = sender
        self._listing = listing
        self._page_size = page_size
        self._concurrency = concurrency
        self._emit = emit
        self._stats = stats
        # Ask for id order (False only once the server refused it)...
        self._by_id = listing.by_id
        # ...and trust range proofs (False too once a page came back out of id order).
        self._ordered = listing.by_id
        self._seen: set[int] = set()
        self._unkeyed = 0  # rows without an integer id: passed through, counted, never deduped
        self._coverage = Coverage()
        self._sorted: list[int] | None = None  # sorted seen ids, kept only while repairing
        self._planned_pages = 1
        self._last_total = 0
        self._repairs_left = 0  # re-reads allowed to close holes; set by _repair
        self._shift = 0  # rows the latest re-read found moved left since first seen
        self._decoding: _Decoding | None = None

    @property
    def received(self) -> int:
        return len(self._seen) + self._unkeyed

    async def run(self) -> None:
        if self._listing.decoder is not None:
            self._decoding = _Decoding(self._listing.decoder)
        try:
            first = await self._first_page()
            await self._take(0, first, always=True)
            step = self._page_size - 1 if self._ordered else self._page_size
            offsets = list(range(step, first.total, step))
            self._planned_pages = 1 + len(offsets)
            await self._fetch_all(offsets)
            await self._verify()
        finally:
            if self._decoding is not None:
                self._decoding.close()

    # -- fetching --

    async def _first_page(self) -> _Fetched:
        try:
            return await self._fetch(0)
        except errors.InvalidRequestError:
            if not (self._by_id and self._listing.by_id_optional):
                raise
            # Products: id ordering is not documented as whitelisted; page in server order.
            logger.warning(
                "%s refused order_by=id: paging without range proofs", self._listing.path
            )
            self._by_id = self._ordered = False
            return await self._fetch(0)

    async def _fetch(self, offset: int, limit: int | None = None) -> _Fetched:
        params = {**self._listing.filters, "offset": str(offset)}
        params["limit"] = str(limit or self._page_size)
        if self._by_id:
            # Kept even after a page came back out of order: every page of one listing must
            # ask for the same order, or offsets would mean different things.
            params.update(order_by="id", direction="ASC")
        call = _wire.Call("GET", self._listing.path, params, scope=self._listing.scope)
        state = self._sender.retry_state(call)
        while True:
            reply = await self._sender.ok(state, call)
            self._stats.add(pages=1)
            if self._decoding is not None and not _wire.is_html(reply):
                decoded = await self._decoding.decode(reply.body)
                if decoded is not None:
                    return _Fetched(decoded.ids, decoded.total, decoded=decoded, body=reply.body)
            # No decoder, or one that cannot read this body: JSON, with its errors (a body
            # that is no JSON at all is fetched again, like a 5xx).
            data = await self._sender.decode(state, reply, call)
            if not isinstance(data, _wire.RetryIn):
                items, total = self._unwrap(data, call)
                return _Fetched([_row_id(row) for row in items], total, items=items)

    def _unwrap(self, data: Any, call: _wire.Call) -> tuple[list[dict], int]:
        envelope = data.get(self._listing.envelope) if isinstance(data, dict) else None
        items = envelope.get("items") if isinstance(envelope, dict) else None
        total = envelope.get("total") if isinstance(envelope, dict) else None
        if not isinstance(items, list) or isinstance(total, bool) or not isinstance(total, int):
            raise errors.ProtocolError(
                f"listing is not {{{self._listing.envelope!r}: {{items: [...], total: int}}}}",
                method=call.method,
                path=call.path,
                status=200,
            )
        return items, total

    async def _fetch_all(self, offsets: list[int]) -> None:
        """Fetch `offsets` with at most `concurrency` in flight, dispatched in ascending order."""
        pending = iter(offsets)

        async def worker() -> None:
            for offset in pending:  # one shared iterator: each offset goes to one worker
                await self._take(offset, await self._fetch(offset))

        tasks = [asyncio.create_task(worker()) for _ in range(min(self._concurrency, len(offsets)))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _take(self, offset: int, fetched: _Fetched, *, always: bool = False) -> None:
        """Record what the page proves, drop rows already yielded, hand the rest on."""
        self._last_total = fetched.total
        ids = [rid for rid in fetched.ids if rid is not None]
        if self._ordered and any(a >= b for a, b in itertools.pairwise(ids)):
            logger.warning(
                "%s returned ids out of ascending order; relying on total alone",
                self._listing.path,
            )
            self._ordered = False
        size = len(fetched.ids)
        if self._ordered and (span := page_span(offset, self._page_size, ids, size)):
            self._coverage.add(*span)
        keep = [i for i, rid in enumerate(fetched.ids) if self._is_new(rid)]
        if keep or always:
            await self._emit(fetched.page(offset, keep, self._listing.envelope))

    def _is_new(self, rid: int | None) -> bool:
        if rid is None:
            self._unkeyed += 1
            return True
        if rid in self._seen:
            return False
        self._seen.add(rid)
        if self._sorted is not None:
            bisect.insort(self._sorted, rid)
        return True

    # -- verification --

    async def _verify(self) -> None:
        if self._ordered:
            await self._repair()
        for round_ in range(_FINAL_ROUNDS + 1):
            total = (await self._fetch(0, limit=1)).total
            if self.received >= total:
                return
            if round_ == _FINAL_ROUNDS:
                break
            logger.info(
                "%s: %d unique rows but total is now %d; re-reading (round %d)",
                self._listing.path,
                self.received,
                total,
                round_ + 1,
            )
            await self._reread(round_, total)
        raise errors.IncompleteListingError(
            f"listing {self._listing.path} is incomplete: the server reports {total} rows but "
            f"only {self.received} unique rows could be read while it was changing",
            expected=total,
            received=self.received,
            holes=len(self._coverage.holes()) if self._ordered else 0,
        )

    async def _reread(self, round_: int, total: int) -> None:
        if self._ordered and round_ == 0 and self._seen:
            # Rows appended after the tail was read: read on from the last id seen.
            self._coverage.reopen_tail(max(self._seen))
            await self._repair()
            return
        # Rows appeared somewhere else (e.g. an order moved into a status filter): all again.
        step = self._page_size - 1 if self._ordered else self._page_size
        await self._fetch_all(list(range(0, total, step)))
        if self._ordered:
            await self._repair()

    async def _repair(self) -> None:
        """Re-read around each hole until the proven ranges join up from -inf to +inf."""
        # Bounded: a list that keeps changing faster than it can be re-read ends in an error.
        self._repairs_left = 32 + 2 * self._planned_pages
        self._sorted = sorted(self._seen)
        self._shift = 0
        try:
            while self._ordered and (holes := self._coverage.holes()):
                await self._close_hole(holes[0][0])
        finally:
            self._sorted = None

    async def _close_hole(self, low: float) -> None:
        """Walk to the page that holds id `low` and reads past it; stop once that hole moved.

        Rows never move right (ids ascend, inserts append), only left when earlier rows are
        deleted. So `low` sits at its rank among the ids seen, less the shift the latest
        re-read observed. While a page starts past `low`, step back by the seen ids between
        them, at least by a doubling step; while a full page ends at or before `low`, step
        forward by a page less the one-row overlap.
        """
        ranks = self._sorted or []
        rank = bisect.bisect_right(ranks, low) if low > _NEG_INF else 0
        offset, step_back = max(0, rank - 1 - self._shift), 1
        while True:
            if self._repairs_left <= 0:
                self._raise_unrepaired(self._coverage.holes())
            self._repairs_left -= 1
            logger.info("%s: re-reading offset %d after id %s", self._listing.path, offset, low)
            fetched = await self._fetch(offset)
            await self._take(offset, fetched)
            ids = [rid for rid in fetched.ids if rid is not None]
            if ids:
                # How far rows have moved left since they were first seen.
                self._shift = max(0, bisect.bisect_left(ranks, ids[0]) - offset)
            holes = self._coverage.holes()
            if not self._ordered or not holes or holes[0][0] != low:
                return
            if ids and ids[0] <= low:
                offset += max(1, len(fetched.ids) - 1)
                continue
            between = (
                bisect.bisect_left(ranks, ids[0]) - bisect.bisect_right(ranks, low) if ids else 0
            )
            offset = max(0, offset - max(step_back, between + 1))
            step_back *= 2

    def _raise_unrepaired(self, holes: list[tuple[float, float]]) -> None:
        raise errors.IncompleteListingError(
            f"listing {self._listing.path} is incomplete: {len(holes)} id range(s) kept "
            f"shifting while re-read (first after id {holes[0][0]}); "
            f"{self.received} unique rows read",
            expected=self._last_total,
            received=self.received,
            holes=len(holes),
        )


# ---- the sync bridge -------------------------------------------------------------------------


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
