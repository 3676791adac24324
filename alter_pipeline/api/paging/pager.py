"""One listing run: first page, the rest in parallel, range proofs, repairs, the total check."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from alter_pipeline.api import _wire, errors
from alter_pipeline.api.paging.coverage import NEG_INF, Coverage, page_span
from alter_pipeline.api.paging.decoding import Decoding
from alter_pipeline.api.paging.pages import FastPage, Fetched, Listing, Page, row_id
from alter_pipeline.api.paging.sender import AsyncSender

logger = logging.getLogger("alter_pipeline.api")

# Re-reads of the whole listing when `total` says rows are missing; and how many times.
_FINAL_ROUNDS = 3

# Pages under way per request the sender lets fly. A page is first a request, then a wait
# for the decoder and the consumer; the sender's window (never above the ceiling) bounds the
# requests, these extra workers send the next ones while earlier pages wait. With one page
# per slot the sync reached 72% of the raw-fetch limit at 100,000 orders, with two 89%;
# three or four gained nothing more (benchmarks, issue 18).
PAGES_PER_REQUEST = 2

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
        self._decoding: Decoding | None = None

    @property
    def received(self) -> int:
        return len(self._seen) + self._unkeyed

    async def run(self) -> None:
        if self._listing.decoder is not None:
            self._decoding = Decoding(self._listing.decoder)
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

    async def _first_page(self) -> Fetched:
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

    async def _fetch(self, offset: int, limit: int | None = None) -> Fetched:
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
                    return Fetched(decoded.ids, decoded.total, decoded=decoded, body=reply.body)
            # No decoder, or one that cannot read this body: JSON, with its errors (a body
            # that is no JSON at all is fetched again, like a 5xx).
            data = await self._sender.decode(state, reply, call)
            if not isinstance(data, _wire.RetryIn):
                items, total = self._unwrap(data, call)
                return Fetched([row_id(row) for row in items], total, items=items)

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
        """Fetch `offsets`, dispatched in ascending order. At most `concurrency` requests are in
        flight (the sender's window); `PAGES_PER_REQUEST` times as many pages are under way."""
        pending = iter(offsets)

        async def worker() -> None:
            for offset in pending:  # one shared iterator: each offset goes to one worker
                await self._take(offset, await self._fetch(offset))

        workers = min(self._concurrency * PAGES_PER_REQUEST, len(offsets))
        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _take(self, offset: int, fetched: Fetched, *, always: bool = False) -> None:
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
        rank = bisect.bisect_right(ranks, low) if low > NEG_INF else 0
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
