"""Request counters per route and per status, for tests and benchmarks.

Routes are counted by template (`GET /customer-orders/{id}`), so a test can assert how many
detail calls a client made whatever the ids. Thread-safe: the server thread writes while a test
thread reads.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class RequestCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._by_route_status: Counter[tuple[str, int]] = Counter()
        self._in_flight = 0
        self._peak_in_flight = 0

    def started(self) -> None:
        """A request arrived (before any latency): counted towards `peak_in_flight`."""
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def peak_in_flight(self) -> int:
        """The most requests the server held at once since the last reset: what a client's
        concurrency ceiling must bound."""
        with self._lock:
            return self._peak_in_flight

    def record(self, route: str, status: int) -> None:
        with self._lock:
            self._routes[route] += 1
            self._statuses[status] += 1
            self._by_route_status[route, status] += 1

    def count(self, route: str | None = None, status: int | None = None) -> int:
        """Requests to `route` (all routes if None) answered `status` (any if None)."""
        with self._lock:
            if route is None:
                return sum(self._statuses.values()) if status is None else self._statuses[status]
            if status is None:
                return self._routes[route]
            return self._by_route_status[route, status]

    def reset(self) -> None:
        with self._lock:
            self._routes.clear()
            self._statuses.clear()
            self._by_route_status.clear()
            self._peak_in_flight = self._in_flight

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._statuses.values()),
                "routes": dict(sorted(self._routes.items())),
                "statuses": {str(code): n for code, n in sorted(self._statuses.items())},
            }
