"""The fault matrix: one flow (full sync, changes, incremental sync, rules, webhook deliveries,
reconcile, deliveries) under each fault, then its result against the emulator's own state.

For every case: the main tables equal the store (less the records that broke the contract),
every order's events form an unbroken chain ending in its row, every event reached the webhook
receiver in order per order, no status transition was applied twice, and no rule is left with
work undone. A case that `stops` must have stopped some run cleanly (the snapshot untouched)
with a message naming the problem; the next run completes.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from secrets import token_hex

import pyarrow.parquet as pq
import pytest
from reliability_helpers import (
    READ_TIMEOUT_S,
    SECRET_ENV,
    WEBHOOK_TIMEOUT_S,
    Shop,
    TransitionLog,
    delivery_problems,
    event_problems,
    lake_tables,
    leaks_in_files,
    leaks_in_text,
    needles,
    new_secret,
    store_tables,
    table_differences,
)

from alter_pipeline.emulator.faults import (
    Burst,
    ChurnFault,
    ContractBreakFault,
    EmptyOkFault,
    Fault,
    HtmlOkFault,
    HugePageFault,
    RateLimitStorm,
    ResetFault,
    RevokedFault,
    ScopeRemovedFault,
    ServerErrorFault,
    SlowFault,
    TruncatedJsonFault,
)
from alter_pipeline.webhooks.receiver import Received, Reply, run_receiver

STORE = {"orders": 60, "products": 4, "seed": 17}


class FlakyReceiver:
    """The shop's endpoint misbehaving on its first `count` requests, then accepting."""

    def __init__(self, make: Callable[[], Reply], count: int) -> None:
        self.make, self.left = make, count

    def __call__(self, incoming: Received) -> Reply:
        if self.left <= 0:
            return Reply(204)
        self.left -= 1
        return self.make()


def _http_date(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


def every(fault: Fault, *, length: int, start: int, period: int, bursts: int | None = None):
    return Burst(fault, length=length, start=start, every=period, bursts=bursts)


@dataclass(frozen=True)
class Case:
    id: str
    faults: Callable[[], list[Fault]]
    stops: str | None = None  # the failure message (regex) when the project stops the run
    receiver: Callable[[], Reply] | None = None  # how the webhook endpoint misbehaves
    broken: str | None = None  # kind of contract break (victims chosen by the test)
    notes: list[str] = field(default_factory=list)


CASES = [
    Case("latency-spikes", lambda: [SlowFault(0.1, 0.05)],
         receiver=lambda: Reply(204, delay_s=0.1)),
    Case("slower-than-read-timeout",
         lambda: [Burst(SlowFault(1.0, 2 * READ_TIMEOUT_S), length=1, start=3)],
         receiver=lambda: Reply(204, delay_s=2 * WEBHOOK_TIMEOUT_S)),
    Case("5xx-bursts-html",
         lambda: [every(ServerErrorFault(1.0, (500, 502, 503, 504)), length=3, start=1,
                        period=9)],
         receiver=lambda: Reply(503, body=b"<html><body>503</body></html>")),
    Case("429-storm-retry-after-seconds",
         lambda: [RateLimitStorm(start=1, seconds=0.5)],
         receiver=lambda: Reply(429, {"Retry-After": "1"})),
    Case("429-storm-retry-after-http-date",
         lambda: [RateLimitStorm(start=1, seconds=0.5, http_date=True)],
         receiver=lambda: Reply(429, {"Retry-After": _http_date(60)})),
    Case("reset-before-headers",
         lambda: [every(ResetFault(1.0, "headers"), length=2, start=2, period=11)]),
    Case("reset-mid-body", lambda: [every(ResetFault(1.0, "body"), length=2, start=2, period=11)]),
    # A 200 whose body is no JSON is retried like a 5xx: a short burst costs nothing, one that
    # outlasts the retries (`-persistent`) stops the run with a clear message.
    Case("truncated-json", lambda: [every(TruncatedJsonFault(1.0), length=1, start=2, period=23)]),
    Case("html-login-page-200", lambda: [every(HtmlOkFault(1.0), length=1, start=2, period=23)]),
    Case("empty-200", lambda: [every(EmptyOkFault(1.0), length=1, start=2, period=23)]),
    Case("html-login-page-200-persistent",
         lambda: [Burst(HtmlOkFault(1.0), length=100, start=2)], stops="HTML page"),
    Case("string-where-number-belongs", lambda: [], broken="string_number"),
    Case("missing-id", lambda: [], broken="missing_id"),
    Case("unknown-status", lambda: [], broken="unknown_status"),
    Case("price-not-a-number", lambda: [], broken="price_not_number"),
    Case("string-id", lambda: [], broken="string_id"),
    Case("huge-page", lambda: [HugePageFault(1.0, factor=10)]),
    # Bursts while the full sync pages (requests 1-3), the incremental sync re-reads (7-9) and
    # the rules run (13-15); the reconcile (from request 22) then has to repair everything. A
    # change during the reconcile's own reads would be seen by the next sync, not this one.
    Case("churn-while-paging",
         lambda: [every(ChurnFault(1.0, actions=2), length=3, start=1, period=6, bursts=3)]),
    Case("credentials-revoked-mid-run", lambda: [RevokedFault(start=3)],
         stops="authentication failed"),
    Case("scope-removed-mid-rules", lambda: [ScopeRemovedFault("orders:write", start=5)],
         stops="orders:write"),
]  # fmt: skip


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = new_secret()
    monkeypatch.setenv(SECRET_ENV, value)
    return value


@pytest.fixture
def shop_for(
    emulator_factory: Callable[..., object], tmp_path: Path, secret: str
) -> Iterator[Callable[[Case], Shop]]:
    shops: list[Shop] = []
    receivers = []

    def make(case: Case) -> Shop:
        behaviour = FlakyReceiver(case.receiver, 3) if case.receiver else None
        context = run_receiver(secret, behaviour=behaviour)
        receivers.append(context)
        credentials = {"key": f"key-{token_hex(8)}", "token": f"token-{token_hex(8)}"}
        emulator = emulator_factory(**STORE, **credentials)
        shop = Shop(emulator, tmp_path, context.__enter__())
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.close()
    for context in receivers:
        context.__exit__(None, None, None)


def _victims(shop: Shop) -> list[int]:
    """Three orders whose records break the contract: a new cart (recently active: the
    incremental sync re-reads it) and two older orders."""
    store = shop.emulator.store
    older = store.order_ids()
    return [store.create_order()["id"], older[1], older[len(older) // 2]]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault_loses_nothing(
    case: Case,
    shop_for: Callable[[Case], Shop],
    secret: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    shop = shop_for(case)
    log = TransitionLog()
    faults: list[Fault] = [log, *case.faults()]
    victims: list[int] = []
    if case.broken:
        victims = _victims(shop)
        faults.append(ContractBreakFault(case.broken, order_ids=victims))
    shop.run_flow(faults, mutation_seed=len(case.id), avoid=victims)

    failures = [f"{p.name}: {f}" for p in shop.phases for f in p.failures]
    if case.stops:
        assert failures, f"{case.id} never stopped a run"
        assert any(re.search(case.stops, f) for f in failures), failures
    else:
        assert not failures, failures
    expected = store_tables(shop.emulator.store, leave_out=victims)
    assert table_differences(expected, lake_tables(shop.lake)) == []
    assert event_problems(shop.lake) == []
    assert delivery_problems(shop.lake, shop.receiver) == []
    moved = Counter(order_id for order_id, _, _ in log.moves)
    assert log.moves and max(moved.values()) == 1, "a transition was applied twice"
    undone = {i for matches in shop.rules_left_undone().values() for i, _ in matches}
    assert undone <= churned(faults), "the rules left work undone"
    if victims:
        _assert_rejected(shop, victims)
    _assert_no_secret_leaked(shop, secret, tmp_path, caplog, failures)


def _assert_no_secret_leaked(
    shop: Shop, secret: str, root: Path, caplog: pytest.LogCaptureFixture, failures: list[str]
) -> None:
    hidden = needles(shop.emulator.key, shop.emulator.token, secret)
    assert leaks_in_files([root], hidden) == []
    texts = [r.getMessage() for r in caplog.records] + failures
    texts += [r.body.decode() + repr(r.headers) for r in shop.receiver.received]
    assert leaks_in_text(texts, hidden) == []


def churned(faults: list[Fault]) -> set[int]:
    """Orders a churn fault changed behind the rules' back (they may match a rule afterwards)."""
    inner = [f.fault if isinstance(f, Burst) else f for f in faults]
    return {i for f in inner if isinstance(f, ChurnFault) for i in f.touched}


def _assert_rejected(shop: Shop, victims: list[int]) -> None:
    snapshot = shop.lake.current()
    assert snapshot is not None
    rejected = pq.read_table(snapshot.table_dir("rejected_records")).to_pylist()
    for order_id in victims:
        url = f'/{order_id}"'
        hits = [r for r in rejected if url in r["raw_json"]]
        assert hits, f"order {order_id} is not in rejected_records"
        assert all(r["entity"] == "order" and r["reason"] for r in hits)
