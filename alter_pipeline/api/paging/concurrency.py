"""How many listing requests may be in flight, and how fast they may start: AIMD, pure logic.

An API with a rate limit answers 429 once a client sends faster than it allows; an API that is
struggling answers slower. `AdaptiveLimit` reacts to both, and never exceeds the user's ceiling:

* window (requests in flight): starts at `START_WINDOW` and grows by one per success (doubling
  each round trip: the ceiling within a few round trips) until the first decrease, so an API's
  limit is first crossed by a couple of requests, not by the ceiling's worth; after a 429, +1
  per window of successes (additive);
  halved on a 429 and cut by a tenth while the smoothed latency is over twice the lowest seen
  (multiplicative), at most once per window of replies each, never below one.
* pace (requests per second): none until the first 429, then half the rate the client was
  sending at (a window limit alone cannot obey a rate limit: one request in flight at 30 ms is
  33 requests a second; and the rate measured includes the burst the limit allowed at first);
  times `PACE_DECREASE` on each later 429, and
  +`PACE_STEP` per success (additive: the pace climbs a few percent a second, so a 429 comes
  rarely, and only after the pace has crossed the limit). Once the pace has climbed
  `LIFTED_FACTOR` times past where the last 429 left it, the limit is taken to have lifted:
  the pace is dropped and the window alone rules again.
* Retry-After: every sender waits until it has passed (one 429 stops all, not one sender).

A 429 to a request sent before the latest decrease is not a new signal: the decrease already
answered it. The clock is injectable, so tests drive every rule without sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

START_WINDOW = 2
FIRST_PACE_DECREASE = 0.5  # an unpaced listing overshoots the limit by the burst it allows
PACE_DECREASE = 0.85
PACE_STEP = 0.02  # requests/s added to the pace per success: ~2% of the pace per second
LIFTED_FACTOR = 1.5
LATENCY_RISE = 2.0  # smoothed latency over this many times the lowest: the server is queueing
LATENCY_DECREASE = 0.9
_EWMA = 0.1  # weight of the newest latency in the smoothed one
_RATE_WINDOW = 1.0  # seconds of sends the current sending rate is measured over
_MIN_SPAN = 0.05  # seconds: the shortest span a sending rate is measured over


@dataclass(frozen=True, slots=True)
class Settled:
    """What a listing ended with: for the run's metadata."""

    window: int
    pace: float | None  # requests per second; None: no pace was needed (or it was lifted)
    throttled: int  # 429 answers seen
    replies: int  # replies heard, 429s included


class AdaptiveLimit:
    def __init__(self, ceiling: int, clock: Callable[[], float] = time.monotonic) -> None:
        if ceiling < 1:
            raise ValueError("the concurrency ceiling must be >= 1")
        self.ceiling = ceiling
        self.window = float(min(ceiling, START_WINDOW))
        self.pace: float | None = None
        self.throttled = 0
        self.replies = 0
        self._starting = True  # growing by one a success, until the first decrease
        self._clock = clock
        self._in_flight = 0
        self._paused_until = 0.0
        self._next_start = 0.0
        self._last_decrease = float("-inf")
        self._last_latency_cut = float("-inf")
        self._pace_at_throttle = 0.0
        self._starts: deque[float] = deque()
        self._first_start: float | None = None
        self._lowest = float("inf")
        self._smoothed: float | None = None

    def now(self) -> float:
        return self._clock()

    # -- asking to send --

    def may_start(self) -> bool:
        """Whether the window has room for one more request."""
        return self._in_flight < max(1, int(self.window))

    def reserve(self) -> float:
        """Take a slot in the window; seconds to wait before sending (pause and pace)."""
        now = self._clock()
        self._in_flight += 1
        start = max(now, self._paused_until)
        if self.pace is not None:
            start = max(start, self._next_start)
            self._next_start = start + 1.0 / self.pace
        if not self._starts and self._first_start is None:
            self._first_start = start
        self._starts.append(start)
        while self._starts and self._starts[0] < start - _RATE_WINDOW:
            self._starts.popleft()
        return start - now

    def paused_for(self) -> float:
        """Seconds left of a Retry-After pause (for requests that reserved before it began)."""
        return max(0.0, self._paused_until - self._clock())

    def sending_rate(self) -> float:
        """Requests a second started over the last second, or since the first start when that
        is more recent (a listing's first 429 often comes within its first second: counting
        its few starts as a second's worth would pace it far below what the API allowed)."""
        if not self._starts:
            return 1.0
        assert self._first_start is not None
        span = min(_RATE_WINDOW, max(self._clock() - self._first_start, _MIN_SPAN))
        return max(1.0, len(self._starts) / span)

    # -- hearing back --

    def on_success(self, sent_at: float) -> None:
        now = self._clock()
        self._in_flight = max(0, self._in_flight - 1)
        self.replies += 1
        self._observe_latency(now - sent_at, now)
        growth = 1.0 if self._starting else 1.0 / max(1.0, self.window)
        self.window = min(float(self.ceiling), self.window + growth)
        if self.pace is not None:
            self.pace += PACE_STEP
            if self.pace >= self._pace_at_throttle * LIFTED_FACTOR:
                self.pace = None  # the limit lifted: the window alone rules again

    def on_other(self) -> None:
        """A reply that says nothing about load (an error, a 4xx): frees the slot only."""
        self._in_flight = max(0, self._in_flight - 1)
        self.replies += 1

    def on_throttled(self, sent_at: float, retry_after: float | None) -> None:
        """A 429: pause everyone for Retry-After; decrease once per round of requests."""
        now = self._clock()
        self._in_flight = max(0, self._in_flight - 1)
        self.replies += 1
        self.throttled += 1
        if retry_after is not None:
            self._paused_until = max(self._paused_until, now + retry_after)
        if sent_at < self._last_decrease:
            return  # sent before the latest decrease took effect: already answered
        self._last_decrease = now
        self._starting = False
        self.window = max(1.0, self.window / 2)
        if self.pace is None:
            self.pace = max(0.1, self.sending_rate() * FIRST_PACE_DECREASE)
        else:
            self.pace = max(0.1, self.pace * PACE_DECREASE)
        self._pace_at_throttle = self.pace

    def settled(self) -> Settled:
        pace = None if self.pace is None else round(self.pace, 1)
        return Settled(max(1, int(self.window)), pace, self.throttled, self.replies)

    def _observe_latency(self, latency: float, now: float) -> None:
        self._lowest = min(self._lowest, latency)
        smoothed = latency if self._smoothed is None else self._smoothed
        self._smoothed = smoothed + _EWMA * (latency - smoothed)
        if self._smoothed <= LATENCY_RISE * self._lowest:
            return
        # Once per round trip at most: each cut needs time to show in the latencies.
        if now - self._last_latency_cut < self._smoothed:
            return
        self._last_latency_cut = now
        self._starting = False
        self.window = max(1.0, self.window * LATENCY_DECREASE)
