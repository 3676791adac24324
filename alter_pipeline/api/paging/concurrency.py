"""How many listing requests may be in flight, and how fast they may start: pure logic.

An API with a rate limit answers 429 once a client sends faster than it allows; an API that is
struggling answers slower. `AdaptiveLimit` reacts to both, and never exceeds the user's ceiling:

* window (requests in flight): starts at `START_WINDOW` and grows by one per success (doubling
  each round trip: the ceiling within a few round trips) until the first decrease, so an API's
  limit is first crossed by a couple of requests, not by the ceiling's worth; after a 429, +1
  per window of successes (additive);
  halved on a 429 and cut by a tenth while the smoothed latency is over twice the lowest seen
  (multiplicative), at most once per window of replies each, never below one.
* pace (requests per second): none until the first 429 (a window limit alone cannot obey a
  rate limit: one request in flight at 30 ms is 33 requests a second). Then:

  - searching: just under the limit guessed from how long the first 429 took to come (the
    burst an API allows at first hides its limit: see `_guess_limit`), doubling every
    `SEARCH_DOUBLING` seconds until the next 429;
  - measured: a 429 means the limit's allowance is used up. Between two such moments, the
    requests it accepted are exactly what it allowed in that time (for a token bucket: its
    refill, whatever its burst; for a fixed window: a window's worth), so their rate is the
    limit (a lower bound: allowance the API dropped unused while the pace sat below it is
    missed, so a measurement never lowers a limit measured before, unless the 429 came while
    the pace was under that one). The pace drops to `BELOW_LIMIT` of it, then climbs along a
    cubic: flat near the limit for the time the limit grants `PROBE_REQUESTS`, then faster (as
    TCP CUBIC does), so a 429 comes about once per that many requests, and a limit that has
    risen is found again.

  Once the API has accepted `LIFTED_SECONDS` worth of the limit more than the limit allows
  (searching: once the pace has doubled three times), the limit is taken to have lifted: the
  pace is dropped and the window alone rules again.
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
ASSUMED_BURST = 1.0  # seconds of its rate a limit lets through at once (a guess: see below)
FIRST_PACE_SHARE = 0.9  # the first pace, as a share of the limit guessed from the first 429
SEARCH_DOUBLING = 3.0  # seconds: the pace doubles this often until the limit is measured
BELOW_LIMIT = 0.97  # the pace right after a 429, as a share of the measured limit
PROBE_RISE = 0.04  # the pace climbs this share above where it started ...
PROBE_REQUESTS = 300  # ... in the time the limit allows this many requests (then faster)
MIN_MEASURE_SPAN = 1.0  # seconds: two 429s closer than this do not measure the limit, ...
MAX_MEASURE_SPAN = 60.0  # ... nor two further apart (the limit may have changed)
PACE_DECREASE = 0.85  # a 429 that cannot measure the limit
LIFTED_SECONDS = 10.0  # accepted this many seconds' worth past the measured limit: it lifted
SEARCH_LIFTED = 8.0  # searching, the pace is dropped at 8 x its base: three doublings
LATENCY_RISE = 2.0  # smoothed latency over this many times the lowest: the server is queueing
LATENCY_DECREASE = 0.9
_EWMA = 0.1  # weight of the newest latency in the smoothed one
_RATE_WINDOW = 1.0  # seconds of sends the current sending rate is measured over
_MIN_SPAN = 0.05  # seconds: the shortest span a sending rate is measured over


@dataclass(frozen=True, slots=True)
class _Pace:
    """The pace since the latest decrease: `base` requests/s at `since`, climbing from there."""

    base: float
    since: float
    limit: float | None  # the measured limit (requests/s); None: still searching for it

    def at(self, now: float) -> float:
        elapsed = max(0.0, now - self.since)
        if self.limit is None:
            return self.base * 2 ** (elapsed / SEARCH_DOUBLING)
        probe_seconds = PROBE_REQUESTS / self.limit
        return self.base * (1 + PROBE_RISE * (elapsed / probe_seconds) ** 3)


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
        self.throttled = 0
        self.replies = 0
        self._accepted = 0  # successes heard
        self._starting = True  # growing by one a success, until the first decrease
        self._clock = clock
        self._in_flight = 0
        self._paused_until = 0.0
        self._next_start = 0.0
        self._pace: _Pace | None = None
        self._last_decrease = float("-inf")
        self._accepted_at_decrease = 0
        self._last_latency_cut = float("-inf")
        self._starts: deque[float] = deque()
        self._first_start: float | None = None
        self._lowest = float("inf")
        self._smoothed: float | None = None

    def now(self) -> float:
        return self._clock()

    @property
    def pace(self) -> float | None:
        """Requests per second the listing may start now; None: no pace (the window rules)."""
        return None if self._pace is None else self._pace.at(self._clock())

    @property
    def measured_limit(self) -> float | None:
        """The API's rate limit as measured between two 429s (requests/s), if it was."""
        return None if self._pace is None else self._pace.limit

    # -- asking to send --

    def may_start(self) -> bool:
        """Whether the window has room for one more request."""
        return self._in_flight < max(1, int(self.window))

    def reserve(self) -> float:
        """Take a slot in the window; seconds to wait before sending (pause and pace)."""
        now = self._clock()
        self._in_flight += 1
        start = max(now, self._paused_until)
        if self._pace is not None:
            start = max(start, self._next_start)
            self._next_start = start + 1.0 / self._pace.at(start)
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
        self._accepted += 1
        self._observe_latency(now - sent_at, now)
        growth = 1.0 if self._starting else 1.0 / max(1.0, self.window)
        self.window = min(float(self.ceiling), self.window + growth)
        if self._pace is not None and self._limit_lifted(now):
            self._pace = None  # the window alone rules again

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
        self._pace = self._pace_after_429(now)
        self._last_decrease = now
        self._accepted_at_decrease = self._accepted
        self._starting = False
        self.window = max(1.0, self.window / 2)

    def _pace_after_429(self, now: float) -> _Pace:
        span = now - self._last_decrease
        current = self._pace.at(now) if self._pace is not None else self.sending_rate()
        known = self._pace.limit if self._pace is not None else None
        if span < MIN_MEASURE_SPAN:  # too soon after the last to measure the limit over
            return _Pace(max(0.1, current * PACE_DECREASE), now, known)
        if span > MAX_MEASURE_SPAN:  # the first 429, or the first in a long while
            return _Pace(max(0.1, self._guess_limit(now) * FIRST_PACE_SHARE), now, None)
        measured = max(0.1, (self._accepted - self._accepted_at_decrease) / span)
        # The accepted rate reads low when the limit dropped allowance unused (the pace was
        # under it for a while): a limit measured before still holds, unless this 429 came
        # while the pace was under it (the limit itself came down).
        limit = measured if known is None or current < known else max(measured, known)
        return _Pace(max(0.1, min(current, limit * BELOW_LIMIT)), now, limit)

    def _guess_limit(self, now: float) -> float:
        """The limit guessed at the first 429: sending at rate S for t seconds until then, the
        API let through a burst (B seconds of its limit R) plus R a second, so S t = R (B + t).
        B is unknown: a second's worth, as many APIs and the emulator allow, is assumed. A 429
        within a fraction of a second says the limit is far below S; after many seconds,
        that it is just under S. The next 429 measures the limit, whatever B is."""
        assert self._first_start is not None
        elapsed = max(now - self._first_start, _MIN_SPAN)
        return self.sending_rate() * elapsed / (elapsed + ASSUMED_BURST)

    def _limit_lifted(self, now: float) -> bool:
        """Whether the API has let through far more than the limit allows (any burst it
        grants is spent within seconds), or the search has climbed three doublings."""
        assert self._pace is not None
        if self._pace.limit is None:
            return self._pace.at(now) >= SEARCH_LIFTED * self._pace.base
        accepted = self._accepted - self._accepted_at_decrease
        allowed = self._pace.limit * (now - self._last_decrease + LIFTED_SECONDS)
        return accepted >= allowed

    def settled(self) -> Settled:
        pace = self.pace
        return Settled(
            max(1, int(self.window)),
            None if pace is None else round(pace, 1),
            self.throttled,
            self.replies,
        )

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
