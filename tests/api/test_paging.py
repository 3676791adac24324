"""The verified pager: range proofs, repairs of shifted pages, dedup, fallbacks, early stop.

Most cases run the real pager against a simulated order list behind httpx.MockTransport, which
deletes and appends orders between page reads exactly as a schedule says; hypothesis explores
schedules. The sockets-and-threads version against the emulator is in test_client_emulator.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from api_testing import fast_retry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted_server import Reply, ScriptedServer, json_reply

from alter_pipeline.api import (
    AlterClient,
    AuthenticationError,
    IncompleteListingError,
    Page,
    Timeouts,
)
from alter_pipeline.api._wire import Counters, Secrets
from alter_pipeline.api.paging import (
    PAGES_PER_REQUEST,
    Coverage,
    FastPage,
    Listing,
    PagerSettings,
    iter_pages,
    page_span,
)
from alter_pipeline.lake.fast_flatten import decode_orders_pages

INF = float("inf")
ORDERS = Listing("/customer-orders", "order", "orders:read")
PRODUCTS = Listing("/products", "products", "products:read", by_id_optional=True)

# One step of a schedule, applied just before a page is read: positions to delete (as
# fractions of the current list) and how many new orders to append.
Step = tuple[list[float], int]


class ChangingList:
    """Orders with ascending ids that change between page reads, per a schedule."""

    def __init__(self, size: int, schedule: list[Step] | None = None, seed: int = 0) -> None:
        self.ids = list(range(1, size + 1))
        self.initial = frozenset(self.ids)
        self.deleted: set[int] = set()
        self.created: set[int] = set()
        self.next_id = size
        self.schedule = list(schedule or [])
        self.reads: list[tuple[int, int]] = []  # (offset, limit) in arrival order
        self.orderings: set[tuple[str | None, str | None]] = set()  # (order_by, direction)
        self.rng = random.Random(seed)
        self.envelope = "order"
        self.honour_id_order = True

    def survivors(self) -> set[int]:
        """Orders that existed for the whole listing: each must be yielded."""
        return set(self.initial) - self.deleted

    def _step(self) -> None:
        if not self.schedule:
            return
        deletes, inserts = self.schedule.pop(0)
        for fraction in deletes:
            if self.ids:
                self.deleted.add(self.ids.pop(int(fraction * len(self.ids))))
        for _ in range(inserts):
            self.next_id += 1
            self.created.add(self.next_id)
            self.ids.append(self.next_id)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.rng.random() / 1000)  # pages complete out of order
        self._step()
        params = request.url.params
        offset, limit = int(params["offset"]), int(params["limit"])
        self.reads.append((offset, limit))
        self.orderings.add((params.get("order_by"), params.get("direction")))
        ids = self.ids if self.honour_id_order else sorted(self.ids, reverse=True)
        window = ids[offset : offset + limit]
        rows = [{"id": i, "totalPrice": {"value": 1.5, "currency": "EUR"}} for i in window]
        body = {"items": rows, "total": len(ids)}
        return httpx.Response(200, json={self.envelope: body})


def run_pager(
    source: ChangingList, listing: Listing = ORDERS, *, page_size: int = 5, concurrency: int = 4
) -> list[Page | FastPage]:
    settings_ = PagerSettings(
        base_url="http://alter.test/public-api/v1",
        secrets=Secrets("k-123", "t-456"),
        timeouts=Timeouts(),
        retry=fast_retry(),
        stats=Counters(),
        user_agent="tests",
        transport=httpx.MockTransport(source.handle),
    )
    return list(iter_pages(settings_, listing, page_size=page_size, concurrency=concurrency))


def yielded_ids(pages: list[Page | FastPage]) -> list[int]:
    return [row["id"] for page in pages for row in page.items]


# ---- range proofs ----------------------------------------------------------------------------


def test_adjacent_integer_ranges_join() -> None:
    coverage = Coverage()
    coverage.add(float("-inf"), 10)
    coverage.add(11, INF)
    assert coverage.holes() == []


def test_gap_between_ranges_is_a_hole() -> None:
    coverage = Coverage()
    coverage.add(float("-inf"), 10)
    coverage.add(14, 20)
    assert coverage.holes() == [(10, 14), (20, INF)]


def test_page_span_open_at_the_start_and_at_a_short_end() -> None:
    assert page_span(0, 5, [3, 4, 5, 6, 7], 5) == (float("-inf"), 7)
    assert page_span(4, 5, [7, 8], 2) == (7, INF)
    assert page_span(0, 5, [], 0) == (float("-inf"), INF)
    assert page_span(9, 5, [], 0) is None


# ---- listings of a stable list ---------------------------------------------------------------


def test_stable_list_yields_every_order_once() -> None:
    source = ChangingList(103)
    pages = run_pager(source, page_size=10)
    assert sorted(yielded_ids(pages)) == list(range(1, 104))
    assert all(page.total == 103 for page in pages)


def test_pages_overlap_by_one_row() -> None:
    source = ChangingList(30)
    run_pager(source, page_size=10, concurrency=1)
    # 0, 9, 18, 27 in id order, then one limit=1 read of `total` at the end.
    assert source.reads == [(0, 10), (9, 10), (18, 10), (27, 10), (0, 1)]


def test_empty_list_yields_one_empty_page_with_total() -> None:
    assert run_pager(ChangingList(0)) == [Page(offset=0, items=[], total=0)]


def test_money_in_raw_items_is_decimal() -> None:
    pages = run_pager(ChangingList(3))
    assert pages[0].items[0]["totalPrice"]["value"] == Decimal("1.5")
    assert isinstance(pages[0].items[0]["totalPrice"]["value"], Decimal)


# ---- listings of a changing list -------------------------------------------------------------


def test_deletion_before_a_boundary_is_repaired(caplog: pytest.LogCaptureFixture) -> None:
    # Page 2 (offset 9) is read after 3 early orders went: rows shift left past the overlap.
    source = ChangingList(40, schedule=[([], 0), ([0.0, 0.0, 0.0], 0)])
    caplog.set_level(logging.INFO, logger="alter_pipeline.api")
    pages = run_pager(source, page_size=10, concurrency=1)
    ids = yielded_ids(pages)
    assert len(ids) == len(set(ids))
    assert source.survivors() <= set(ids)
    assert any("re-reading offset" in r.getMessage() for r in caplog.records)


def test_orders_appended_during_listing_are_followed_to_the_end() -> None:
    source = ChangingList(20, schedule=[([], 0), ([], 7), ([], 7)])
    ids = yielded_ids(run_pager(source, page_size=5, concurrency=2))
    assert sorted(ids) == sorted(source.ids)  # nothing deleted: all, including the new ones


schedules = st.lists(
    st.tuples(st.lists(st.floats(0, 0.999), max_size=3), st.integers(0, 3)), max_size=25
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 120),
    schedule=schedules,
    page_size=st.integers(2, 12),
    concurrency=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_no_duplicates_and_no_misses_under_inserts_and_deletes(
    size: int, schedule: list[Step], page_size: int, concurrency: int, seed: int
) -> None:
    source = ChangingList(size, schedule, seed)
    ids = yielded_ids(run_pager(source, page_size=page_size, concurrency=concurrency))
    assert len(ids) == len(set(ids)), "an order was yielded twice"
    missed = source.survivors() - set(ids)
    assert not missed, f"orders that existed throughout were missed: {sorted(missed)}"
    assert set(ids) <= source.initial | source.created


# ---- pages read by a listing's decoder -------------------------------------------------------

FAST_ORDERS = Listing("/customer-orders", "order", "orders:read", decoder=decode_orders_pages)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 80),
    schedule=schedules,
    page_size=st.integers(2, 12),
    concurrency=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_decoded_pages_keep_the_same_guarantees(
    size: int, schedule: list[Step], page_size: int, concurrency: int, seed: int
) -> None:
    # The fast decoder hands the pager each row's id: dedup and range proofs work from those.
    source = ChangingList(size, schedule, seed)
    pages = run_pager(source, FAST_ORDERS, page_size=page_size, concurrency=concurrency)
    assert all(isinstance(page, FastPage) for page in pages)
    ids = yielded_ids(pages)
    assert len(ids) == len(set(ids)), "an order was yielded twice"
    assert not source.survivors() - set(ids)
    assert set(ids) <= source.initial | source.created


def test_decoded_page_rows_are_the_json_rows_not_yielded_before() -> None:
    pages = run_pager(ChangingList(30), FAST_ORDERS, page_size=10, concurrency=1)
    # Offsets 0, 9, 18, 27: each later page's first row is the previous page's last.
    assert [page.keep for page in pages] == [list(range(10)), *[list(range(1, 10))] * 2, [1, 2]]
    assert sorted(yielded_ids(pages)) == list(range(1, 31))
    assert pages[0].items[0]["totalPrice"]["value"] == Decimal("1.5")  # JSON, Decimal


def test_pages_a_decoder_cannot_read_are_decoded_as_json() -> None:
    refused = Listing(
        "/customer-orders", "order", "orders:read", decoder=lambda bodies: [None] * len(bodies)
    )
    pages = run_pager(ChangingList(23), refused, page_size=5)
    assert all(isinstance(page, Page) for page in pages)
    assert sorted(yielded_ids(pages)) == list(range(1, 24))


# ---- fallbacks and failures ------------------------------------------------------------------


def test_products_fall_back_when_id_order_is_refused() -> None:
    source = ChangingList(23)
    source.envelope = "products"
    refusals: list[str] = []
    original = source.handle

    async def handle(request: httpx.Request) -> httpx.Response:
        if "order_by" in request.url.params:
            refusals.append(str(request.url))
            return httpx.Response(400, json={"message": "order_by must be name or created_at"})
        return await original(request)

    source.handle = handle  # type: ignore[method-assign]
    ids = yielded_ids(run_pager(source, PRODUCTS, page_size=5))
    assert sorted(ids) == list(range(1, 24))
    assert len(refusals) == 1


def test_ids_out_of_order_fall_back_to_the_total_check() -> None:
    source = ChangingList(17)
    source.honour_id_order = False
    ids = yielded_ids(run_pager(source, page_size=5))
    assert sorted(ids) == list(range(1, 18))
    assert source.orderings == {("id", "ASC")}  # every page asked for the same order


def test_total_that_cannot_be_reached_raises_incomplete_listing() -> None:
    source = ChangingList(12)
    original = source.handle

    async def lying(request: httpx.Request) -> httpx.Response:
        response = await original(request)
        body = response.json()
        body["order"]["total"] = 15  # three orders the server never lists
        return httpx.Response(200, json=body)

    source.handle = lying  # type: ignore[method-assign]
    with pytest.raises(IncompleteListingError, match="reports 15 rows but only 12") as caught:
        run_pager(source, page_size=5)
    assert (caught.value.expected, caught.value.received) == (15, 12)


def test_401_mid_listing_raises_from_the_iterator(
    scripted: ScriptedServer, make_client: Callable[..., AlterClient]
) -> None:
    def page(hit: Any) -> Reply:
        offset = int(hit.query["offset"])
        if offset > 0:
            return json_reply(401, {"message": "Credential revoked."})
        rows = [{"id": i} for i in range(1, 51)]
        return json_reply(200, {"order": {"items": rows, "total": 500}})

    scripted.on("GET", "/customer-orders", page)
    client = make_client(scripted.base_url)
    seen: list[Page] = []
    with pytest.raises(AuthenticationError, match="Credential revoked"):
        for received in client.iter_order_pages(concurrency=4):
            seen.append(received)
    assert len(seen) == 1 and len(seen[0].items) == 50


@pytest.mark.parametrize(
    "bad_body",
    [Reply(200, b"<html>maintenance</html>", content_type="text/html"), Reply(200, b"")],
    ids=["html", "empty"],
)
def test_page_with_a_200_that_is_not_json_is_fetched_again(
    scripted: ScriptedServer, make_client: Callable[..., AlterClient], bad_body: Reply
) -> None:
    failed: set[int] = set()

    def page(hit: Any) -> Reply:
        offset, limit = int(hit.query["offset"]), int(hit.query["limit"])
        if offset > 0 and not failed:  # the first page after the first, once
            failed.add(offset)
            return bad_body
        rows = [{"id": i} for i in range(offset + 1, min(offset + limit, 120) + 1)]
        return json_reply(200, {"order": {"items": rows, "total": 120}})

    scripted.on("GET", "/customer-orders", page)
    client = make_client(scripted.base_url)
    ids = [
        row["id"] for p in client.iter_order_pages(concurrency=2, page_size=50) for row in p.items
    ]
    assert sorted(set(ids)) == list(range(1, 121))
    assert failed and client.stats.snapshot().retries == 1


def test_stopping_early_ends_the_background_thread() -> None:
    source = ChangingList(400)
    settings_ = PagerSettings(
        "http://alter.test/public-api/v1", Secrets("k-1", "t-1"),
        Timeouts(), fast_retry(),
        Counters(), "tests", httpx.MockTransport(source.handle),
    )  # fmt: skip
    before = threading.active_count()
    pages = iter_pages(settings_, ORDERS, page_size=5, concurrency=4)
    next(pages)
    pages.close()
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before
    assert len(source.reads) < 80  # far from all 80 pages: the listing was abandoned


def test_slow_consumer_keeps_few_pages_in_memory() -> None:
    source = ChangingList(1000)
    stats = Counters()
    settings_ = PagerSettings(
        "http://alter.test/public-api/v1", Secrets("k-1", "t-1"),
        Timeouts(), fast_retry(),
        stats, "tests", httpx.MockTransport(source.handle),
    )  # fmt: skip
    pages = iter_pages(settings_, ORDERS, page_size=10, concurrency=4)
    next(pages)
    # The consumer is busy: first the pager fills what it may (else the test proves nothing),
    # then it must stop there. The queue holds `concurrency` pages, each worker one more.
    bound = 1 + 4 + 4 * PAGES_PER_REQUEST + 1
    deadline = time.monotonic() + 10
    while stats.snapshot().pages < bound - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stats.snapshot().pages >= bound - 1, "the pager never filled its queue"
    time.sleep(0.3)  # the time it had to overrun the bound
    fetched_ahead = stats.snapshot().pages
    pages.close()
    assert fetched_ahead <= bound
