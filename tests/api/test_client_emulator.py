"""The client against the real emulator over loopback sockets: every endpoint, typed shapes,
faults and rate limits counted by the emulator's own counters, and paging while orders change.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from api_testing import fast_retry

from alter_pipeline.api import (
    AlterClient,
    AuthenticationError,
    InvalidRequestError,
    MissingScopeError,
    NotFoundError,
    ProtocolError,
    RetryPolicy,
    ServerError,
    Timeouts,
)
from alter_pipeline.api.models import Order, OrderSummary
from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.emulator.faults import HtmlOkFault

Factory = Callable[..., RunningEmulator]


def connect(emu: RunningEmulator, *, retry: RetryPolicy | None = None, **auth: str) -> AlterClient:
    return AlterClient(
        emu.base_url,
        auth.get("key", emu.key),
        auth.get("token", emu.token),
        retry=retry or fast_retry(),
        timeouts=Timeouts(connect=2.0, read=10.0),
    )


@pytest.fixture
def client(emulator: RunningEmulator) -> Iterator[AlterClient]:
    with connect(emulator) as made:
        yield made


def listed_ids(client: AlterClient, **options: Any) -> list[int]:
    return [row["id"] for page in client.iter_order_pages(**options) for row in page.items]


# ---- every endpoint --------------------------------------------------------------------------


def test_healthz_and_auth_check(client: AlterClient) -> None:
    assert client.healthz().ok
    info = client.auth_check()
    assert info.ok and info.storefront_id == 12 and "orders:read" in info.scopes


def test_list_entry_and_detail_have_their_own_shapes(
    client: AlterClient, emulator: RunningEmulator
) -> None:
    page = client.list_orders(limit=5, order_by="id", direction="asc")
    assert page.total == emulator.store.order_count() and len(page.items) == 5
    entry = page.items[0]
    assert isinstance(entry, OrderSummary) and isinstance(entry.customizer_name, str)
    detail = client.get_order(entry.id)
    assert isinstance(detail, Order) and isinstance(detail.design_name, str)
    assert detail.total_price == entry.total_price


def test_money_matches_the_store_exactly(client: AlterClient, emulator: RunningEmulator) -> None:
    store = {o["id"]: o for o in emulator.store.orders_detail()}
    for order in client.get_orders(list(store)[:60]):
        expected = store[order.id]["totalPrice"]["value"]
        assert isinstance(order.total_price.value, Decimal)
        assert order.total_price.value == Decimal(str(expected))


def test_list_filters_are_sent_and_applied(client: AlterClient, emulator: RunningEmulator) -> None:
    paid = client.list_orders(order_status="paid", limit=50)
    assert paid.total == len(emulator.store.order_ids(["paid"]))
    assert all(order.order_status == "paid" for order in paid.items)


def test_raw_pages_keep_wire_dicts_and_total(
    client: AlterClient, emulator: RunningEmulator
) -> None:
    newest = client.list_orders_raw(limit=3, order_by="id", direction="DESC")
    assert newest.total == emulator.store.order_count() and newest.offset == 0
    assert [o["id"] for o in newest.items] == emulator.store.order_ids()[-1:-4:-1]
    assert "customizerName" in newest.items[0]  # the list shape, untouched
    products = client.list_products_raw(offset=2, limit=4)
    assert products.offset == 2 and len(products.items) == 4 and products.total == 12


def test_batch_read_chunks_by_50(client: AlterClient, emulator: RunningEmulator) -> None:
    ids = emulator.store.order_ids()[:120]
    orders = client.get_orders_raw([*ids, 999_999])  # an unknown id is simply absent
    assert [o["id"] for o in orders] == ids
    assert emulator.counters.count("POST /customer-orders/batch") == 3


def test_order_writes(client: AlterClient, emulator: RunningEmulator) -> None:
    created = emulator.store.create_order(status="editable")
    order_id, item_id = created["id"], created["productItems"][0]["id"]
    assert client.set_order_status(order_id, "shopping_cart").new_status == "shopping_cart"
    assert client.set_item_quantities(order_id, {item_id: 4}).success
    assert client.get_order(order_id).product_items[0].quantity == 4
    assert client.set_all_quantities(order_id, 2).quantity == 2
    assert client.delete_order(order_id).already_deleted is False
    with pytest.raises(NotFoundError):
        client.get_order(order_id)


def test_embed_session_preview_and_products(client: AlterClient, emulator: RunningEmulator) -> None:
    products = client.list_products(limit=50)
    product = client.get_product(products.items[0].id)
    assert product == products.items[0] and products.total == 12
    session = client.create_embed_session("viewer", "https://yourstore.com", design_id=product.id)
    assert session.expires_in == 3600 and session.token.count(".") == 2
    preview = client.get_product_preview(product.product_id, "small")
    assert preview.content.startswith(b"\x89PNG") and preview.content_type == "image/png"


# ---- errors from the emulator ----------------------------------------------------------------


def test_wrong_token_is_authentication_error_without_secrets(emulator: RunningEmulator) -> None:
    with (
        connect(emulator, token="wrong-token-0000") as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.list_orders()
    assert "wrong-token-0000" not in str(caught.value) + repr(caught.value)
    assert emulator.key not in str(caught.value)


def test_missing_scope_names_it(emulator_factory: Factory) -> None:
    with (
        connect(emulator_factory(scopes=("orders:read",))) as client,
        pytest.raises(MissingScopeError) as caught,
    ):
        client.set_order_status(1, "paid")
    assert caught.value.scope == "orders:write"


def test_locked_order_quantity_is_invalid_request(
    client: AlterClient, emulator: RunningEmulator
) -> None:
    created = emulator.store.create_order(status="paid")
    with pytest.raises(InvalidRequestError, match="paid") as caught:
        client.set_all_quantities(created["id"], 3)
    assert caught.value.status == 409


def test_html_200_is_protocol_error(emulator_factory: Factory) -> None:
    with (
        connect(emulator_factory(faults=[HtmlOkFault(1.0)])) as client,
        pytest.raises(ProtocolError, match="HTML") as caught,
    ):
        client.get_order(1)
    assert caught.value.content_type is not None and "html" in caught.value.content_type


# ---- retries counted by the emulator ---------------------------------------------------------


def test_faults_are_retried_and_every_attempt_counted(emulator_factory: Factory) -> None:
    emu = emulator_factory(fault_rate=0.3, seed=11)
    with connect(emu, retry=fast_retry(max_attempts=10)) as client:
        for order_id in emu.store.order_ids()[:30]:
            assert client.get_order(order_id).id == order_id
        stats = client.stats.snapshot()
    route = "GET /customer-orders/{id}"
    failures = sum(emu.counters.count(route, status) for status in (500, 502, 503))
    assert failures > 0
    assert emu.counters.count(route, 200) == 30
    assert stats.requests == emu.counters.count(route) == 30 + failures
    assert stats.retries == failures


def test_embed_session_not_retried_after_emulated_5xx(emulator_factory: Factory) -> None:
    emu = emulator_factory(fault_rate=1.0)
    with connect(emu) as client, pytest.raises(ServerError):
        client.create_embed_session("customizer", "https://yourstore.com", order_id=1)
    assert emu.counters.count("POST /embed/session") == 1


def test_rate_limit_retry_after_is_obeyed(
    emulator_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    emu = emulator_factory(rate_limit=20)
    caplog.set_level(logging.INFO, logger="alter_pipeline.api")
    with connect(emu, retry=fast_retry(max_attempts=5)) as client:
        for _ in range(30):  # a burst of 20 passes, then 429 with Retry-After: 1
            client.auth_check()
    assert emu.counters.count("GET /auth/check", 429) >= 1
    assert emu.counters.count("GET /auth/check", 200) == 30
    waits = [r.getMessage() for r in caplog.records if "after 429" in r.getMessage()]
    assert waits and all(w.endswith("in 1.00s") for w in waits)


def test_listing_under_faults_is_complete(emulator_factory: Factory) -> None:
    emu = emulator_factory(orders=600, fault_rate=0.2, seed=5)
    with connect(emu, retry=fast_retry(max_attempts=10)) as client:
        ids = listed_ids(client, concurrency=8)
        assert client.stats.snapshot().retries > 0
    assert sorted(ids) == emu.store.order_ids()


# ---- paging ----------------------------------------------------------------------------------


def test_iter_order_pages_reads_every_order_once(
    client: AlterClient, emulator: RunningEmulator
) -> None:
    pages = list(client.iter_order_pages(concurrency=4, page_size=20))
    ids = [row["id"] for page in pages for row in page.items]
    assert sorted(ids) == emulator.store.order_ids() and len(ids) == len(set(ids))
    assert {page.total for page in pages} == {emulator.store.order_count()}
    assert isinstance(pages[0].items[0]["totalPrice"]["value"], int | Decimal)


def test_listing_never_has_more_requests_in_flight_than_its_concurrency(
    emulator_factory: Factory,
) -> None:
    # The pager keeps more pages under way than requests (PAGES_PER_REQUEST): the server
    # must still never hold more than `concurrency` of its requests at once.
    emu = emulator_factory(orders=400, latency_ms=20)
    with connect(emu) as client:
        ids = listed_ids(client, concurrency=3, page_size=10)
    assert sorted(ids) == emu.store.order_ids()
    assert emu.counters.peak_in_flight() == 3


def test_iter_orders_and_products_are_typed(client: AlterClient) -> None:
    orders = list(client.iter_orders(order_status="completed"))
    assert orders and all(o.order_status == "completed" for o in orders)
    products = list(client.iter_products())
    assert len(products) == 12 and len({p.id for p in products}) == 12


def test_paging_while_orders_are_created_and_deleted(
    emulator_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alter_pipeline.api")
    emu = emulator_factory(orders=1500, latency_ms=15, seed=21)
    store = emu.store
    initial = set(store.order_ids())
    deleted: set[int] = set()
    created: set[int] = set()
    done = threading.Event()

    def shoppers() -> None:
        rng = random.Random(4)
        while not done.is_set():
            victim = rng.choice(sorted(initial - deleted))
            store.delete_order(victim)  # anywhere in the list: shifts every later page
            deleted.add(victim)
            created.add(store.create_order()["id"])
            done.wait(0.003)

    mutator = threading.Thread(target=shoppers)
    with connect(emu) as client:
        mutator.start()
        try:
            ids = listed_ids(client, concurrency=4, page_size=20)
        finally:
            done.set()
            mutator.join()
    assert len(deleted) > 20, "the list did not change while it was paged"
    assert any("re-reading offset" in r.getMessage() for r in caplog.records), "no shift seen"
    assert len(ids) == len(set(ids)), "an order was yielded twice"
    missed = (initial - deleted) - set(ids)
    assert not missed, f"{len(missed)} orders that existed throughout were missed"
    assert set(ids) <= initial | created
