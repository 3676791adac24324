"""Injected failures: a pluggable list of fault modes tried on every API request.

A fault mode is a `Fault`: `before` may answer in place of the endpoint (a 5xx page, a slow
answer), `after` may replace the endpoint's answer (an HTML 200, a corrupted record). The app
runs `before` of each fault in list order until one answers, then `after` of each on the
endpoint's response. Adding a mode (a timeout, a truncated body, a connection reset) is a new
subclass appended to `EmulatorConfig.faults`; nothing else changes.

Every draw comes from one `random.Random` seeded from the emulator's seed, so a run with the
same requests in the same order fails the same way.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

_HTML_ERROR = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
}


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
    """A 500, 502 or 503 with an HTML body, as a proxy in front of a failing server sends."""

    async def before(self, request: Request, rng: random.Random) -> Response | None:
        if not self.fires(rng):
            return None
        code = rng.choice(tuple(_REASONS))
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


def _order_records(body: object) -> list[dict]:
    if isinstance(body, dict) and isinstance(body.get("orders"), list):
        return body["orders"]
    if isinstance(body, dict) and isinstance(body.get("order"), dict):
        items = body["order"].get("items")
        return items if isinstance(items, list) else []
    return []


def fault_chain(fault_rate: float, extra: Sequence[Fault]) -> list[Fault]:
    """The configured modes: the `fault_rate` 5xx mode first, then any extra ones."""
    chain: list[Fault] = [ServerErrorFault(fault_rate)] if fault_rate > 0 else []
    return [*chain, *extra]
