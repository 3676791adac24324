"""Latency, injected faults, rate limiting, live mode and the request counters."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.emulator.faults import BadRecordFault, Fault, HtmlOkFault, SlowFault
from alter_pipeline.emulator.throttle import TokenBucket

from ._http import TLS, client_of

Factory = Callable[..., RunningEmulator]


def test_latency_is_added_to_every_response(emulator_factory: Factory) -> None:
    with client_of(emulator_factory(latency_ms=120)) as client:
        client.get("/healthz")  # connect first: time only the answer
        started = time.perf_counter()
        client.get("/customer-orders", params={"limit": 1})
        assert time.perf_counter() - started >= 0.12


class ArrivalLog(Fault):
    """Not a fault: notes when each request reaches the fault chain."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.times: list[float] = []

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        self.times.append(time.monotonic())
        return None


def test_latency_does_not_block_other_requests(emulator_factory: Factory) -> None:
    arrivals = ArrivalLog()
    emulator = emulator_factory(latency_ms=200, faults=[arrivals])

    async def burst() -> None:
        async with httpx.AsyncClient(base_url=emulator.base_url, headers=emulator.headers) as c:
            await asyncio.gather(*(c.get("/auth/check") for _ in range(8)))

    asyncio.run(burst())
    # Served one at a time, requests would pass the chain 0.2 s apart; concurrently, they all
    # pass it within one latency.
    first = min(arrivals.times)
    assert sum(1 for t in arrivals.times if t < first + 0.2) == 8


def test_fault_rate_one_answers_every_call_with_an_html_5xx(emulator_factory: Factory) -> None:
    with client_of(emulator_factory(fault_rate=1.0)) as client:
        answers = [client.get("/customer-orders") for _ in range(12)]
    assert {a.status_code for a in answers} <= {500, 502, 503}
    assert len({a.status_code for a in answers}) > 1
    for answer in answers:
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.text.startswith("<html>")


def test_fault_rate_fails_about_its_share(emulator_factory: Factory) -> None:
    with client_of(emulator_factory(fault_rate=0.3)) as client:
        failed = sum(client.get("/auth/check").status_code >= 500 for _ in range(100))
    assert 10 <= failed <= 55


def test_healthz_is_never_faulted(emulator_factory: Factory) -> None:
    with client_of(emulator_factory(fault_rate=1.0)) as client:
        assert client.get("/healthz").status_code == 200


def test_extra_fault_modes_plug_in(emulator_factory: Factory) -> None:
    emulator = emulator_factory(faults=(HtmlOkFault(1.0),))
    with client_of(emulator) as client:
        answer = client.get("/customer-orders")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")


def test_bad_record_fault_corrupts_one_order_id(emulator_factory: Factory) -> None:
    with client_of(emulator_factory(faults=(BadRecordFault(1.0),))) as client:
        items = client.get("/customer-orders").json()["order"]["items"]
    assert sum(isinstance(o["id"], str) for o in items) == 1


def test_slow_fault_delays_the_answer(emulator_factory: Factory) -> None:
    emulator = emulator_factory(faults=(SlowFault(1.0, 0.5),))
    with client_of(emulator) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/auth/check", timeout=0.1)


def test_rate_limit_answers_429_with_retry_after(emulator_factory: Factory) -> None:
    with client_of(emulator_factory(rate_limit=2)) as client:
        answers = [client.get("/auth/check") for _ in range(12)]
    limited = [a for a in answers if a.status_code == 429]
    assert 1 <= len(limited) <= 10
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "rate limit" in limited[0].json()["message"]


def test_rate_limit_recovers_after_retry_after(emulator_factory: Factory) -> None:
    with client_of(emulator_factory(rate_limit=20)) as client:
        while client.get("/auth/check").status_code != 429:
            pass
        time.sleep(0.1)  # two tokens' worth at 20 per second
        assert client.get("/auth/check").status_code == 200


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(2)] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.take() == 0.0


def test_live_mode_changes_state_over_time(emulator_factory: Factory) -> None:
    emulator = emulator_factory(live=True, live_rate=300)
    before = emulator.store.snapshot()
    time.sleep(0.4)
    after = emulator.store.snapshot()
    assert after != before
    with httpx.Client(verify=TLS) as client:
        live = client.get(emulator.root_url + "/__emulator/stats").json()["live"]
    assert sum(live.values()) > 10
    assert {"create_cart", "change_quantity", "checkout"} <= live.keys()


def test_live_changes_are_served(emulator_factory: Factory) -> None:
    emulator = emulator_factory(live=True, live_rate=300)
    with client_of(emulator) as client:
        first = client.get("/customer-orders", params={"limit": 5}).json()
        time.sleep(0.3)
        assert client.get("/customer-orders", params={"limit": 5}).json() != first


def test_counters_count_requests_per_route_and_status(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    client.get("/customer-orders/1")
    client.get("/customer-orders/999999")
    client.get("/customer-orders")
    counters = emulator.store.counters
    assert counters.count("GET /customer-orders/{id}") == 2
    assert counters.count("GET /customer-orders/{id}", 404) == 1
    assert counters.count("GET /customer-orders") == 1
    assert counters.count() == 3


def test_stats_endpoint_needs_no_credentials(
    emulator: RunningEmulator, client: httpx.Client
) -> None:
    client.get("/products")
    stats = httpx.get(emulator.root_url + "/__emulator/stats", verify=TLS).json()
    assert stats["routes"] == {"GET /products": 1}
    assert stats["statuses"] == {"200": 1}
    assert (stats["orders"], stats["products"], stats["live"]) == (120, 12, None)


def test_rejected_requests_are_counted_too(emulator_factory: Factory) -> None:
    emulator = emulator_factory(fault_rate=1.0)
    with client_of(emulator) as client:
        client.get("/products")
    assert emulator.counters.count("GET /products") == 1
