"""The pager's adaptive concurrency (api/paging/concurrency.py), driven by an injected clock,
and a listing under the emulator's rate limit."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import pytest

from alter_pipeline.api import AlterClient
from alter_pipeline.api.paging.concurrency import (
    ASSUMED_BURST,
    BELOW_LIMIT,
    FIRST_PACE_SHARE,
    LIFTED_SECONDS,
    AdaptiveLimit,
)
from alter_pipeline.emulator.throttle import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def round_trip(limit: AdaptiveLimit, clock: Clock, latency: float = 0.03) -> None:
    """One request: wait for its slot, then succeed after `latency` seconds."""
    clock.now += limit.reserve()
    sent = clock.now
    clock.now += latency
    limit.on_success(sent)


def fill_window(limit: AdaptiveLimit) -> int:
    started = 0
    while limit.may_start():
        limit.reserve()
        started += 1
    return started


def test_window_grows_to_the_ceiling_and_never_past_it() -> None:
    clock = Clock()
    limit = AdaptiveLimit(5, clock)
    for _ in range(500):
        round_trip(limit, clock)
        assert limit.window <= 5
    assert limit.window == 5
    assert fill_window(limit) == 5


def test_a_ceiling_of_one_keeps_one_request_in_flight() -> None:
    clock = Clock()
    limit = AdaptiveLimit(1, clock)
    for _ in range(50):
        round_trip(limit, clock)
    assert fill_window(limit) == 1


def throttle(limit: AdaptiveLimit, clock: Clock, retry_after: float | None = None) -> None:
    limit.reserve()
    limit.on_throttled(clock.now, retry_after)


def guessed_pace(rate: float, seconds: float) -> float:
    """The first pace after sending at `rate` for `seconds` (see `_guess_limit`)."""
    return rate * seconds / (seconds + ASSUMED_BURST) * FIRST_PACE_SHARE


def test_a_429_halves_the_window_and_paces_below_the_sending_rate() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, clock)
    for _ in range(40):  # 40 requests, one every 25 ms: 40 a second
        round_trip(limit, clock, latency=0.025)
    assert limit.window == 8 and limit.pace is None
    assert limit.sending_rate() == pytest.approx(40, rel=0.05)
    sent = clock.now
    limit.reserve()
    limit.on_throttled(sent, retry_after=None)
    assert limit.window == 4
    assert limit.pace == pytest.approx(guessed_pace(40, 1.0), rel=0.05)
    assert limit.pace is not None and limit.pace < 40
    assert limit.measured_limit is None  # one 429 cannot tell the limit


def test_a_429_within_the_first_second_guesses_a_limit_far_below_the_sending_rate() -> None:
    # 10 requests in 0.15 s (~67 a second): the API let them through as its first burst.
    clock = Clock()
    limit = AdaptiveLimit(8, clock)
    for _ in range(10):
        round_trip(limit, clock, latency=0.015)
    throttle(limit, clock)
    assert limit.pace == pytest.approx(guessed_pace(67, 0.15), rel=0.1)
    assert limit.pace is not None and limit.pace < 67 / 4
    assert limit.throttled == 1


def test_a_429_after_a_long_run_guesses_a_limit_just_under_the_sending_rate() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, clock)
    for _ in range(800):  # 20 s at 40 a second: the burst was spent long ago
        round_trip(limit, clock, latency=0.025)
    throttle(limit, clock)
    assert limit.pace == pytest.approx(guessed_pace(40, 20.0), rel=0.05)
    assert limit.pace is not None and limit.pace > 40 * 0.8


def test_retry_after_pauses_every_sender_until_it_has_passed() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, clock)
    limit.reserve()
    limit.on_throttled(clock.now, retry_after=2.0)
    clock.now += 0.5
    waits = [limit.reserve() for _ in range(3)]
    assert waits[0] == pytest.approx(1.5)  # the pause, whoever asks
    assert all(w >= 1.5 for w in waits)


def test_429s_sent_before_the_decrease_do_not_decrease_again() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, clock)
    for _ in range(20):
        round_trip(limit, clock)
    sent = clock.now
    for _ in range(4):
        limit.reserve()
    clock.now += 0.03
    for _ in range(4):  # a burst of 429s to requests all sent before the first came back
        limit.on_throttled(sent, retry_after=None)
    assert limit.window == 4 and limit.throttled == 4


def test_the_pace_spaces_requests_evenly() -> None:
    clock = Clock()
    limit = measured_at(20.0, clock)
    pace = limit.pace
    assert pace is not None
    clock.now += 1.0
    gaps = [limit.reserve() for _ in range(3)]
    assert gaps[1] - gaps[0] == pytest.approx(1 / pace, rel=0.01)
    assert gaps[2] - gaps[1] == pytest.approx(1 / pace, rel=0.01)


def test_rising_latency_cuts_the_window() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, clock)
    for _ in range(50):
        round_trip(limit, clock, latency=0.03)
    assert limit.window == 8
    for _ in range(50):  # the server starts queueing: ten times slower
        round_trip(limit, clock, latency=0.3)
    assert limit.window < 8


def test_two_429s_measure_the_limit_as_the_rate_accepted_between_them() -> None:
    clock = Clock()
    limit = sending_fast(clock)
    throttle(limit, clock, retry_after=1.0)
    first = clock.now
    clock.now += 1.0  # the pause: the API refills what the 50 below use up
    accept_every(limit, clock, 50, gap=0.03)
    clock.now = first + 2.5
    throttle(limit, clock)
    assert limit.measured_limit == pytest.approx(20)  # 50 accepted in 2.5 s
    assert limit.pace == pytest.approx(20 * BELOW_LIMIT)


def test_the_pace_stays_near_the_measured_limit_then_climbs_past_it() -> None:
    clock = Clock()
    limit = measured_at(20.0, clock)
    clock.now += 5.0
    assert limit.pace is not None and limit.pace < 20
    clock.now += 30.0
    assert limit.pace is not None and limit.pace > 25  # probing: the limit may have risen


def test_a_429_below_the_measured_limit_measures_it_again() -> None:
    clock = Clock()
    limit = measured_at(20.0, clock)
    start = clock.now
    accept_every(limit, clock, 10, gap=0.2)  # 10 accepted in 2 s: the limit came down to 5
    clock.now = start + 2.0
    throttle(limit, clock)
    assert limit.measured_limit == pytest.approx(5)


def test_a_429_after_a_lull_keeps_the_limit_measured_before() -> None:
    # The pace climbed past the limit, but the API had dropped allowance unused while the
    # listing waited: the rate accepted reads low, and must not pull the pace down with it.
    clock = Clock()
    limit = measured_at(20.0, clock)
    clock.now += 30.0  # no requests at all: the pace climbed past 20
    throttle(limit, clock)
    assert limit.measured_limit == pytest.approx(20)


def test_recovers_after_the_limit_lifts() -> None:
    clock = Clock()
    limit = measured_at(20.0, clock)
    assert limit.window < 8
    # No 429 any more: requests flow at the pace until the API has let through LIFTED_SECONDS'
    # worth past the limit.
    for _ in range(int(20 * (LIFTED_SECONDS + 60))):
        round_trip(limit, clock, latency=0.01)  # as fast as before (no queueing)
    assert limit.pace is None and limit.window == 8
    assert limit.reserve() == 0.0  # no pause, no pace


def sending_fast(clock: Clock) -> AdaptiveLimit:
    """A limit that has sent 100 requests a second for a second, without a 429 yet."""
    limit = AdaptiveLimit(8, clock)
    for _ in range(100):
        round_trip(limit, clock, latency=0.01)
    return limit


def accept_every(limit: AdaptiveLimit, clock: Clock, count: int, gap: float) -> None:
    """`count` requests, `gap` seconds apart or further if the pace says so, each accepted
    (heard back at once: the 10 ms they took are counted before they were sent)."""
    for _ in range(count):
        clock.now += gap
        clock.now += limit.reserve()
        limit.on_success(sent_at=clock.now - 0.01)


def measured_at(rate: float, clock: Clock) -> AdaptiveLimit:
    """A limit that has met two 429s a second apart, `rate` requests accepted between them."""
    limit = sending_fast(clock)
    throttle(limit, clock)
    start = clock.now
    accept_every(limit, clock, int(rate), gap=1 / rate)
    clock.now = start + 1.0
    throttle(limit, clock)
    assert limit.measured_limit == pytest.approx(rate)
    return limit


@dataclass
class Outcome:
    accepted: int = 0
    throttled: int = 0


def listing_against_a_token_bucket(
    rate: float, seconds: float, latency: float, most_per_second: float = 1000.0
) -> Outcome:
    """Simulated time: 8 senders, each request answered `latency` seconds after it is sent,
    429 with Retry-After: 1 once the emulator's token bucket is empty. The client sends at
    most `most_per_second` (its CPU: about 140 a second for the sync on this machine)."""
    clock = Clock()
    start = clock.now
    limit = AdaptiveLimit(8, clock)
    bucket = TokenBucket(rate, clock=clock)
    outcome = Outcome()
    events: list[tuple[float, int, str, float]] = []  # (time, tie-break, kind, sent at)
    order = 0
    next_free = clock.now

    def fill() -> None:
        nonlocal order
        while limit.may_start():
            order += 1
            heapq.heappush(events, (clock.now + limit.reserve(), order, "send", 0.0))

    fill()
    while clock.now < start + seconds:
        clock.now, _, kind, sent = heapq.heappop(events)
        if kind == "send":
            if limit.paused_for():  # a 429 heard while this one waited (the sender re-checks)
                heapq.heappush(events, (clock.now + limit.paused_for(), order, kind, 0.0))
                continue
            if clock.now < next_free:  # busy with the previous one
                heapq.heappush(events, (next_free, order, kind, 0.0))
                continue
            next_free = clock.now + 1 / most_per_second
            reply = "ok" if bucket.take() == 0 else "429"
            heapq.heappush(events, (clock.now + latency, order, reply, clock.now))
        elif kind == "ok":
            outcome.accepted += 1
            limit.on_success(sent)
        else:
            outcome.throttled += 1
            limit.on_throttled(sent, retry_after=1.0)
        fill()
    return outcome


@pytest.mark.parametrize(
    ("rate", "latency", "most_per_second"),
    [(20, 0.03, 140), (50, 0.03, 140), (100, 0.03, 140), (100, 0.03, 1000)],
)
def test_a_listing_at_a_token_bucket_gets_90_percent_of_its_rate_with_2_percent_429s(
    rate: float, latency: float, most_per_second: float
) -> None:
    # 20 s, as in the bench: the first seconds, where the limit is still unknown, weigh most.
    seconds = 20.0
    outcome = listing_against_a_token_bucket(rate, seconds, latency, most_per_second)
    assert outcome.accepted / seconds >= 0.9 * rate
    assert outcome.throttled / (outcome.accepted + outcome.throttled) <= 0.02


def test_listing_under_a_rate_limit_is_complete_and_paces_itself(emulator_factory) -> None:
    # 100 pages at 20 requests/s, 30 ms a reply: one request in flight would already send
    # ~33 a second, so only a pace keeps the listing under the limit.
    emu = emulator_factory(orders=5000, rate_limit=20, latency_ms=30)
    with AlterClient(emu.base_url, emu.key, emu.token) as client:
        ids = [row["id"] for page in client.iter_order_pages(concurrency=8) for row in page.items]
        stats = client.stats.snapshot()
    assert sorted(ids) == emu.store.order_ids()
    assert stats.throttled == emu.counters.count(status=429) > 0
    # The emulator's bucket runs on the wall clock of a shared machine: how many 429s a run of
    # a few seconds meets depends on its load, so the share (<= 2%) is the bench's target
    # (`python -m benchmarks.syncbench --rate-only`), not asserted here.
    assert stats.pace is not None


def test_a_pause_begun_after_a_reservation_still_holds_it() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, clock)
    assert limit.reserve() == 0.0
    limit.on_throttled(clock.now, retry_after=1.0)
    assert limit.paused_for() == pytest.approx(1.0)
    clock.now += 1.0
    assert limit.paused_for() == 0.0
