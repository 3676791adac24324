"""Injected failures: a pluggable list of fault modes tried on every API request.

A fault mode is a `Fault`: `before` may answer in place of the endpoint (a 5xx page, a slow
answer), `after` may replace the endpoint's answer (an HTML 200, a corrupted record). The app
runs `before` of each fault in list order until one answers, then `after` of each on the
endpoint's response. Adding a mode is a new subclass appended to `EmulatorConfig.faults`;
nothing else changes.

Every draw comes from one `random.Random` seeded from the emulator's seed, so a run with the
same requests in the same order fails the same way. `Burst` makes any mode fire on a fixed
pattern of requests instead (a storm of N in a row, every M requests).

The modes:

    ServerErrorFault   500/502/503 (or any `codes`, e.g. 504) with an nginx HTML body
    SlowFault          answers `seconds` late (past a client's read timeout: a timeout)
    RateLimitFault     429 with Retry-After in seconds or as an HTTP date
    RateLimitStorm     every request answers 429 for a while, Retry-After naming the end
    ResetFault         the connection is reset before the headers or in the middle of the body
                       (after the endpoint ran: the client cannot know whether it took effect)
    TruncatedJsonFault a 200 whose JSON is cut short, with a matching Content-Length
    HtmlOkFault        a 200 with an HTML page (a login page or captive portal)
    EmptyOkFault       a 200 with an empty body
    BadRecordFault     one order record per page gets a string id
    ContractBreakFault chosen (or random) order records break the contract in one of `KINDS`
    HugePageFault      the listing ignores `limit` and answers `factor` times as many rows
    ChurnFault         orders are created, changed and deleted while a client pages
    DeleteServedFault  orders a listing page already served are deleted before the next read
    RevokedFault       from request `start` on, every call answers 401 (credentials revoked)
    ScopeRemovedFault  from the `start`-th call needing `scope` on, those answer 403
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from alter_pipeline.contract import ORDER_STATUSES

_HTML_ERROR = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}
# Set by the app on each request's scope: the endpoint's scope ("public", a scope, or None).
SCOPE_KEY = "alter.scope"


class Fault:
    """One fault mode, firing on a share `rate` of requests."""

    def __init__(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {rate}")
        self.rate = rate

    def fires(self, rng: random.Random) -> bool:
        return self.rate > 0 and rng.random() < self.rate

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        """A response to send instead of calling the endpoint, or None."""
        return None

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        """The response to send in place of the endpoint's `response`."""
        return response


class ServerErrorFault(Fault):
    """A 500, 502 or 503 (or one of `codes`) with an HTML body, as a proxy in front of a failing
    server sends."""

    def __init__(self, rate: float, codes: Sequence[int] = (500, 502, 503)) -> None:
        super().__init__(rate)
        unknown = sorted(set(codes) - set(_REASONS))
        if not codes or unknown:
            raise ValueError(f"codes must be among {sorted(_REASONS)}, got {list(codes)}")
        self.codes = tuple(codes)

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if not self.fires(rng):
            return None
        code = rng.choice(self.codes)
        return HTMLResponse(_HTML_ERROR.format(code=code, reason=_REASONS[code]), code)


class SlowFault(Fault):
    """Answers after `seconds` extra: with a short client timeout, this is a timeout."""

    def __init__(self, rate: float, seconds: float) -> None:
        super().__init__(rate)
        self.seconds = seconds

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if self.fires(rng):
            await asyncio.sleep(self.seconds)
        return None


class HtmlOkFault(Fault):
    """A 200 whose body is an HTML page (a captive portal or misrouted proxy)."""

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        if not self.fires(rng):
            return response
        return HTMLResponse("<!doctype html><html><body><h1>Welcome</h1></body></html>", 200)


class BadRecordFault(Fault):
    """Corrupts one order record of a list or batch page: its `id` becomes a string."""

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        if response.status_code != 200 or response.media_type != "application/json":
            return response
        body = json.loads(bytes(response.body))
        records = _order_records(body)
        if not records or not self.fires(rng):
            return response
        victim = rng.choice(records)
        victim["id"] = f"not-a-number-{victim['id']}"
        return Response(json.dumps(body, ensure_ascii=False), 200, media_type="application/json")


class RateLimitFault(Fault):
    """A 429 with `Retry-After`: `retry_after` seconds, or (`http_date`) the moment that many
    seconds ahead as an RFC 9110 date, rounded up to the whole second."""

    def __init__(self, rate: float, retry_after: float = 1.0, *, http_date: bool = False) -> None:
        super().__init__(rate)
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0, got {retry_after}")
        self.retry_after = retry_after
        self.http_date = http_date

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if not self.fires(rng):
            return None
        response = _json({"message": "too many requests, slow down"}, 429)
        response.headers["Retry-After"] = self.header()
        return response

    def header(self) -> str:
        if not self.http_date:
            return f"{self.retry_after:g}"
        moment = datetime.now(UTC) + timedelta(seconds=self.retry_after)
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
        return format_datetime(moment, usegmt=True)


class RateLimitStorm(Fault):
    """A 429 storm: from the `start`-th request on (0-based), every request for `seconds`
    answers 429, its Retry-After naming the end of the storm: the whole seconds left (rounded
    up), or with `http_date` the end as an RFC 9110 date (rounded up to the second)."""

    def __init__(self, start: int = 0, seconds: float = 1.0, *, http_date: bool = False) -> None:
        super().__init__(1.0)
        self.start, self.seconds, self.http_date = start, seconds, http_date
        self.seen = 0
        self.refused = 0
        self.until: float | None = None

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        now = time.time()
        if self.until is None and self.seen >= self.start:
            self.until = now + self.seconds
        self.seen += 1
        if self.until is None or now >= self.until:
            return None
        self.refused += 1
        response = _json({"message": "rate limit exceeded, retry later"}, 429)
        if self.http_date:
            end = datetime.fromtimestamp(math.ceil(self.until), UTC)
            response.headers["Retry-After"] = format_datetime(end, usegmt=True)
        else:
            response.headers["Retry-After"] = str(max(1, math.ceil(self.until - now)))
        return response


class ResetFault(Fault):
    """The connection is reset (TCP RST) after the endpoint ran: `where="headers"` before any
    byte of the answer, `where="body"` after the headers and part of the body. The client
    cannot tell whether its request took effect."""

    def __init__(self, rate: float, where: str = "headers") -> None:
        super().__init__(rate)
        if where not in ("headers", "body"):
            raise ValueError(f"where must be 'headers' or 'body', got {where!r}")
        self.where = where

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        if not self.fires(rng):
            return response
        if self.where == "headers" or not response.body:
            return _ResetResponse()
        return _CutResponse(response, keep=rng.randrange(len(response.body)))


class TruncatedJsonFault(Fault):
    """A 200 whose JSON body is cut short, sent with a Content-Length that matches the cut
    body: the HTTP exchange is complete, the JSON is not."""

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        if not _is_json_ok(response) or len(response.body) < 2 or not self.fires(rng):
            return response
        cut = rng.randrange(1, len(response.body))
        return Response(bytes(response.body[:cut]), 200, media_type="application/json")


class EmptyOkFault(Fault):
    """A 200 with an empty body (and a JSON content type)."""

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        if not _is_json_ok(response) or not self.fires(rng):
            return response
        return Response(b"", 200, media_type="application/json")


KINDS = ("string_id", "missing_id", "string_number", "unknown_status", "price_not_number")


class ContractBreakFault(Fault):
    """Order records that break the contract, in list, batch and detail answers.

    `kind` is one of `KINDS`: a string id, no id, a string where a number belongs (an item's
    quantity), a status the contract does not know, a price that is not a number. With
    `order_ids`, exactly those orders are broken in every answer (a persistently bad record);
    without, each record is broken at `rate`. `broken` collects the ids it broke.
    """

    def __init__(
        self, kind: str, *, order_ids: Sequence[int] | None = None, rate: float = 1.0
    ) -> None:
        super().__init__(rate)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind
        self.order_ids = None if order_ids is None else frozenset(order_ids)
        self.broken: set[int] = set()

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        if not _is_json_ok(response):
            return response
        body = json.loads(bytes(response.body))
        records = _order_records(body, detail=True)
        victims = [record for record in records if self._picks(record, rng)]
        if not victims:
            return response
        for record in victims:
            self.broken.add(record["id"])
            _break(record, self.kind)
        return Response(json.dumps(body, ensure_ascii=False), 200, media_type="application/json")

    def _picks(self, record: dict[str, Any], rng: random.Random) -> bool:
        if not isinstance(record.get("id"), int):
            return False
        if self.order_ids is not None:
            return record["id"] in self.order_ids
        return self.fires(rng)


def _break(record: dict[str, Any], kind: str) -> None:
    if kind == "string_id":
        record["id"] = f"not-a-number-{record['id']}"
    elif kind == "missing_id":
        del record["id"]
    elif kind == "unknown_status":
        record["orderStatus"] = "on_hold"
    elif kind == "price_not_number":
        price = record.get("totalPrice") or {}
        record["totalPrice"] = {**price, "value": f"{price.get('value')} EUR"}
    else:  # string_number
        items = record.get("productItems") or []
        if items:
            items[0]["quantity"] = str(items[0].get("quantity"))
        else:
            record["customizerId"] = str(record.get("customizerId"))


class HugePageFault(Fault):
    """`GET /customer-orders` and `GET /products` ignore `limit` and answer `factor` times as
    many rows (past the documented maximum page size)."""

    def __init__(self, rate: float, factor: int = 20) -> None:
        super().__init__(rate)
        if factor < 2:
            raise ValueError(f"factor must be >= 2, got {factor}")
        self.factor = factor

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        path = request.url.path
        listing = path.endswith(("/customer-orders", "/products"))
        if request.method != "GET" or not listing or not _is_json_ok(response):
            return response
        if not self.fires(rng):
            return response
        from alter_pipeline.emulator import params  # params imports the store: load lazily

        store = request.app.state.runtime.store
        if path.endswith("/products"):
            query = params.product_query(request.query_params)
            body = store.products_page(replace(query, limit=query.limit * self.factor))
        else:
            order_query = params.order_query(request.query_params)
            body = store.orders_page(replace(order_query, limit=order_query.limit * self.factor))
        return Response(body, 200, media_type="application/json")


class ChurnFault(Fault):
    """Shoppers and the merchant act while a client reads orders: before a share `rate` of
    order reads, `actions` random changes happen (create, delete, status, quantity), at most
    `limit` times in all. `done` counts the changes made, `touched` holds the orders changed."""

    def __init__(self, rate: float, actions: int = 3, limit: int | None = None) -> None:
        super().__init__(rate)
        self.actions = actions
        self.limit = limit
        self.fired = 0
        self.done: dict[str, int] = {}
        self.touched: set[int] = set()

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if "/customer-orders" not in request.url.path or request.method not in ("GET", "POST"):
            return None
        if (self.limit is not None and self.fired >= self.limit) or not self.fires(rng):
            return None
        self.fired += 1
        store = request.app.state.runtime.store
        for _ in range(self.actions):
            action = rng.choice(("create", "delete", "status", "quantity"))
            with contextlib.suppress(Exception):  # e.g. a 409 on a locked order: skip it
                self.touched.add(_churn(store, action, rng))
                self.done[action] = self.done.get(action, 0) + 1
        return None


def _churn(store: Any, action: str, rng: random.Random) -> int:
    """One random change; returns the order it changed."""
    if action == "create":
        return store.create_order()["id"]
    order_id = rng.choice(store.order_ids())
    if action == "delete":
        store.delete_order(order_id)
    elif action == "status":
        current = store.status_of(order_id)
        store.set_status(order_id, rng.choice([s for s in ORDER_STATUSES if s != current]))
    else:
        item = rng.choice(store.get_order(order_id)["productItems"])
        store.set_quantity(order_id, item["id"], item["quantity"] % 9 + 1)
    return order_id


class DeleteServedFault(Fault):
    """A deletion lands on a page a client has already read: just before the `at`-th read of
    the order listing (1-based; 2 is between the first and the second page), the orders at
    ranks `first` .. `first + count - 1` of the ascending id order are deleted (the first
    page of an ascending listing served them). `deleted` holds their ids."""

    def __init__(self, at: int = 2, count: int = 1, first: int = 10) -> None:
        super().__init__(1.0)
        self.at, self.count, self.first = at, count, first
        self.reads = 0
        self.deleted: list[int] = []

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if request.method != "GET" or not request.url.path.endswith("/customer-orders"):
            return None
        self.reads += 1
        if self.reads == self.at:
            store = request.app.state.runtime.store
            doomed = store.order_ids()[self.first : self.first + self.count]
            for order_id in doomed:
                store.delete_order(order_id)
            self.deleted += doomed
        return None


class RevokedFault(Fault):
    """The credential is revoked mid-run: from the `start`-th authenticated request on
    (0-based), every call needing credentials answers 401."""

    def __init__(self, start: int = 0) -> None:
        super().__init__(1.0)
        self.start = start
        self.seen = 0

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if request.scope.get(SCOPE_KEY) == "public":
            return None
        self.seen += 1
        if self.seen <= self.start:
            return None
        return _json({"message": "invalid API credentials"}, 401)


class ScopeRemovedFault(Fault):
    """A scope is taken from the credential mid-run: from the `start`-th request needing
    `scope` on (0-based; 0: from the beginning), such calls answer 403 and `/auth/check` no
    longer lists the scope."""

    def __init__(self, scope: str, start: int = 0) -> None:
        super().__init__(1.0)
        self.scope = scope
        self.start = start
        self.seen = 0
        self.removed = start == 0

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if request.scope.get(SCOPE_KEY) != self.scope:
            return None
        self.removed = self.removed or self.seen >= self.start
        self.seen += 1
        if self.removed:
            return _json({"message": f"missing scope {self.scope}"}, 403)
        return None

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        if not self.removed or not request.url.path.endswith("/auth/check"):
            return response
        if not _is_json_ok(response):
            return response
        body = json.loads(bytes(response.body))
        body["scopes"] = [s for s in body.get("scopes", []) if s != self.scope]
        return _json(body, 200)


class Burst(Fault):
    """Fires the wrapped `fault` on a fixed pattern of requests instead of at random:
    `length` requests in a row, starting with request `start` (0-based), then again every
    `every` requests, `bursts` times in all (None: for ever). Give the wrapped fault rate 1."""

    def __init__(
        self,
        fault: Fault,
        *,
        length: int,
        start: int = 0,
        every: int | None = None,
        bursts: int | None = 1,
    ) -> None:
        super().__init__(1.0)
        if length < 1 or start < 0 or (every is not None and every < length):
            raise ValueError("need length >= 1, start >= 0 and every >= length")
        self.fault = fault
        self.length, self.start, self.every, self.bursts = length, start, every, bursts
        self.seen = 0
        self.fired = 0

    def _active(self, n: int) -> bool:
        if n < self.start:
            return False
        if self.every is None:
            return n < self.start + self.length
        burst, position = divmod(n - self.start, self.every)
        return position < self.length and (self.bursts is None or burst < self.bursts)

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        active = self._active(self.seen)
        self.seen += 1
        request.scope[f"alter.burst.{id(self)}"] = active
        if not active:
            return None
        self.fired += 1
        return await self.fault.before(request, rng)

    async def after(self, request: Request, response: Response, rng: random.Random) -> Response:
        if not request.scope.get(f"alter.burst.{id(self)}"):
            return response
        return await self.fault.after(request, response, rng)


# ---- responses that end the connection -------------------------------------------------------


class _ResetResponse(Response):
    """No answer at all: the connection is reset. Counted with status 0."""

    def __init__(self) -> None:
        super().__init__(b"", 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _reset(receive)


class _CutResponse(Response):
    """The status line, the headers (with the full Content-Length) and the first `keep` bytes
    of `original`'s body; then the connection is reset."""

    def __init__(self, original: Response, keep: int) -> None:
        super().__init__(bytes(original.body), original.status_code)
        self.raw_headers = list(original.raw_headers)
        self.keep = keep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        part = bytes(self.body[: self.keep])
        await send({"type": "http.response.body", "body": part, "more_body": True})
        await asyncio.sleep(0.02)  # let the headers and the part reach the client first
        await _reset(receive)


async def _reset(receive: Receive) -> None:
    """Reset the connection of this request: uvicorn's `receive` is a method of its request
    cycle, which holds the transport. Waits until uvicorn has noticed, so it sends nothing."""
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # another server (e.g. an in-process test client)
        raise ConnectionResetError("the emulator reset the connection")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # linger 0: close with RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.001)


def _is_json_ok(response: Response) -> bool:
    return response.status_code == 200 and response.media_type == "application/json"


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status, media_type="application/json")


def _order_records(body: object, *, detail: bool = False) -> list[dict]:
    """The order records of a batch (`orders`) or list (`order.items`) body, and with `detail`
    of a detail (`order`) body too."""
    if isinstance(body, dict) and isinstance(body.get("orders"), list):
        return body["orders"]
    if isinstance(body, dict) and isinstance(body.get("order"), dict):
        order = body["order"]
        if "items" in order and "total" in order:
            return order["items"] if isinstance(order["items"], list) else []
        return [order] if detail else []
    return []


def fault_chain(fault_rate: float, extra: Sequence[Fault]) -> list[Fault]:
    """The configured modes: the `fault_rate` 5xx mode first, then any extra ones."""
    chain: list[Fault] = [ServerErrorFault(fault_rate)] if fault_rate > 0 else []
    return [*chain, *extra]
