"""Sending due deliveries over HTTP, and the retry schedule.

Retry schedule (delay before each retry, counted from the failed attempt):

    attempt 1  immediately when queued
    attempt 2  +5 s         attempt 6  +5 h
    attempt 3  +5 min       attempt 7  +10 h
    attempt 4  +30 min      attempt 8  +10 h, and if that fails too the delivery is dead
    attempt 5  +2 h                     (about 27 h 35 min after the first attempt)

Only a 2xx answer is success. A 429 or 503 with `Retry-After` (seconds or an HTTP date) delays
the retry to at least that moment and pauses the whole endpoint until then. 410 Gone disables
the endpoint and dead-letters whatever it still had queued (`webhooks enable` revives it;
`webhooks replay` resends). Redirects are not followed: a moved endpoint must be reconfigured.

Time: scheduling uses an injectable clock, so tests step through hours of retries without
sleeping. The `webhook-timestamp` header always carries the real wall-clock time of the attempt,
because receivers check it against their own clock (Standard Webhooks allows 5 minutes).
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from alter_pipeline.api.retry import parse_retry_after as parse_retry_after_header
from alter_pipeline.config import Settings, retention_days
from alter_pipeline.webhooks.clock import Clock, fixed_clock, system_clock
from alter_pipeline.webhooks.config import Endpoint, Subscriptions, load_subscriptions
from alter_pipeline.webhooks.outbox import Claim, Outbox
from alter_pipeline.webhooks.signing import USER_AGENT, SecretError, signed_headers

log = logging.getLogger(__name__)

RETRY_DELAYS_S: tuple[float, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS_S)
MAX_RETRY_AFTER_S = 24 * 3600.0  # a receiver asking for more is treated as asking for a day
RETRY_AFTER_STATUSES = frozenset({429, 503})
CONNECT_TIMEOUT_S = 5.0
RESPONSE_LIMIT_BYTES = 4096  # of an answer's body, read only to quote it in the attempt log
ERROR_TEXT_LIMIT = 300
LEASE_MARGIN_S = 30.0  # a lease outlives the attempt's own timeout by this much
CONCURRENCY = 16
PER_ENDPOINT_CONCURRENCY = 8
DELIVERED_RETENTION = timedelta(days=30)  # default of ALTER_WEBHOOK_RETENTION_DAYS
WEBHOOK_RETENTION_ENV = "ALTER_WEBHOOK_RETENTION_DAYS"
DEFAULT_MAX_BATCH = 10_000


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs about 0.1 s: once per process, not once per run.
    return httpx.create_ssl_context()


def retry_delay(attempts_made: int) -> float | None:
    """Seconds to wait after `attempts_made` failed attempts; None once the budget is spent."""
    if 1 <= attempts_made <= len(RETRY_DELAYS_S):
        return RETRY_DELAYS_S[attempts_made - 1]
    return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now` (the client's parser), capped at a day."""
    seconds = parse_retry_after_header(value, now)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER_S)


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt produced. `error` is None only for a 2xx answer."""

    status_code: int | None
    latency_ms: float
    error: str | None = None
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def timed_out(timeout_s: float) -> str:
    return f"timed out after {timeout_s:g} s"


def post(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> Outcome:
    """POST once, reading at most RESPONSE_LIMIT_BYTES of the answer.

    Each phase (connect, send, every read) is bounded here; the coordinator separately holds
    the attempt to `timeout_s` in total (see `Deliverer._expire`)."""
    started = time.monotonic()
    deadline = started + timeout_s
    status: int | None = None
    retry_after: str | None = None
    snippet = b""
    error: str | None = None
    timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
    try:
        with client.stream("POST", url, content=body, headers=headers, timeout=timeout) as response:
            status = response.status_code
            retry_after = response.headers.get("retry-after")
            for chunk in response.iter_raw():
                snippet += chunk
                if len(snippet) >= RESPONSE_LIMIT_BYTES or time.monotonic() >= deadline:
                    break  # leaving the block closes the connection: no unbounded reads
    except httpx.TimeoutException:
        error = timed_out(timeout_s)
    except (httpx.HTTPError, httpx.InvalidURL) as failure:
        error = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
    latency_ms = (time.monotonic() - started) * 1000
    if status is not None and 200 <= status < 300:
        # The receiver accepted it; a body that then stalls or breaks does not undo that.
        return Outcome(status, latency_ms, None, retry_after)
    if status is not None:
        text = snippet[:RESPONSE_LIMIT_BYTES].decode("utf-8", "replace").strip()
        error = f"HTTP {status}" + (f": {' '.join(text.split())}" if text else "")
    return Outcome(status, latency_ms, (error or "no response")[:ERROR_TEXT_LIMIT], retry_after)


@dataclass
class DeliveryReport:
    """Counts of one `deliver_due` run. `held` maps endpoints skipped for configuration reasons
    (a missing or malformed secret) to the reason, which never contains the secret."""

    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    disabled: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)
    lost_leases: int = 0
    elapsed_s: float = 0.0

    @property
    def deliveries_per_s(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        text = (
            f"attempted {self.attempted}: {self.delivered} delivered, {self.retrying} to retry, "
            f"{self.dead} dead in {self.elapsed_s:.2f} s"
        )
        if self.disabled:
            text += f"; disabled after 410 Gone: {', '.join(self.disabled)}"
        return text

    def as_metadata(self) -> dict[str, object]:
        return {
            "attempted": self.attempted,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "dead": self.dead,
            "disabled_endpoints": ", ".join(self.disabled),
            "held_endpoints": ", ".join(f"{k}: {v}" for k, v in self.held.items()),
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass(frozen=True)
class Flight:
    claim: Claim
    deadline: float  # time.monotonic() by which the attempt must have answered


@dataclass(frozen=True)
class Target:
    endpoint: Endpoint
    secret: str = field(repr=False)


AfterSend = Callable[[Claim, Outcome], None]


class Deliverer:
    """Keeps up to `concurrency` attempts in flight (at most `per_endpoint` per endpoint),
    claiming more as slots free up, until nothing due remains or `max_batch` were attempted."""

    def __init__(
        self,
        outbox: Outbox,
        targets: dict[str, Target],
        clock: Clock,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        concurrency: int = CONCURRENCY,
        per_endpoint: int = PER_ENDPOINT_CONCURRENCY,
        after_send: AfterSend | None = None,
    ) -> None:
        self.outbox = outbox
        self.targets = targets
        self.clock = clock
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.per_endpoint = per_endpoint
        self.after_send = after_send
        self.report = DeliveryReport()
        self.in_flight: Counter[str] = Counter()
        # Sends already recorded as timed out but still running on a worker thread: they
        # hold a thread, so no new claim may be queued behind them (it would start late).
        self.overdue: set[Future[Outcome]] = set()

    def now(self) -> float:
        return self.clock().timestamp()

    def run(self) -> DeliveryReport:
        # Sending happens on worker threads with a blocking client: on this stack that is
        # several times faster than httpx's asyncio client. The database stays on this thread.
        client = httpx.Client(
            limits=httpx.Limits(max_connections=self.concurrency),
            follow_redirects=False,
            trust_env=False,  # proxy variables meant for the API must not reroute endpoints
            headers={"user-agent": USER_AGENT, "accept-encoding": "identity"},
            verify=_tls_context(),
        )
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-send")
        flights: dict[Future[Outcome], Flight] = {}
        try:
            while True:
                self.overdue = {f for f in self.overdue if not f.done()}
                for claim in self._claim(len(flights) + len(self.overdue)):
                    flights[pool.submit(self._send, client, claim)] = Flight(
                        claim, self._timeout(claim)
                    )
                if not flights:
                    break
                soonest = min(f.deadline for f in flights.values())
                done, _ = wait(
                    flights,
                    timeout=max(0.0, soonest - time.monotonic()),
                    return_when=FIRST_COMPLETED,
                )
                for future in done:
                    self._finish(flights.pop(future), future.result())
                self._expire(flights)
        finally:
            # A send still running past its deadline was already recorded as timed out;
            # closing the client ends it, and nothing waits for it.
            pool.shutdown(wait=False, cancel_futures=True)
            client.close()
        return self.report

    def _timeout(self, claim: Claim) -> float:
        return time.monotonic() + self.targets[claim.endpoint_id].endpoint.timeout_s

    def _send(self, client: httpx.Client, claim: Claim) -> Outcome:
        """On a worker thread: sign with the attempt's wall-clock time, POST, report."""
        target = self.targets[claim.endpoint_id]
        headers = signed_headers(target.secret, claim.event_id, claim.body, system_clock())
        return post(client, target.endpoint.url, claim.body, headers, target.endpoint.timeout_s)

    def _expire(self, flights: dict[Future[Outcome], Flight]) -> None:
        """Attempts past their total deadline count as timed out, whatever they do later."""
        now = time.monotonic()
        for future, flight in list(flights.items()):
            if now >= flight.deadline and not future.done():
                del flights[future]
                if not future.cancel():  # running: let it finish, but count its thread
                    self.overdue.add(future)
                timeout_s = self.targets[flight.claim.endpoint_id].endpoint.timeout_s
                self._finish(flight, Outcome(None, timeout_s * 1000, timed_out(timeout_s)))

    def _finish(self, flight: Flight, outcome: Outcome) -> None:
        self.in_flight[flight.claim.endpoint_id] -= 1
        if self.after_send is not None:
            self.after_send(flight.claim, outcome)
        self._record(flight.claim, outcome)

    def _claim(self, busy: int) -> list[Claim]:
        room = min(self.concurrency - busy, self.max_batch - self.report.attempted)
        if room <= 0:
            return []
        capacity = {
            endpoint_id: min(room, self.per_endpoint - self.in_flight[endpoint_id])
            for endpoint_id in self.targets
        }
        leases = {
            endpoint_id: target.endpoint.timeout_s + LEASE_MARGIN_S
            for endpoint_id, target in self.targets.items()
        }
        claims = self.outbox.claim(self.now(), capacity, leases)[:room]
        self.report.attempted += len(claims)
        self.in_flight.update(claim.endpoint_id for claim in claims)
        return claims

    def _record(self, claim: Claim, outcome: Outcome) -> None:
        now = self.clock()
        at = now.timestamp()
        where = f"{claim.event_type} {claim.event_id} to {claim.endpoint_id}"
        if outcome.ok:
            assert outcome.status_code is not None  # ok means a 2xx answer
            kept = self.outbox.record_delivered(claim, at, outcome.status_code, outcome.latency_ms)
            self.report.delivered += 1
            log.info(
                "delivered %s (attempt %d, HTTP %s)", where, claim.attempt, outcome.status_code
            )
        elif outcome.status_code == 410:
            reason = f"410 Gone at {now.isoformat(timespec='seconds')}"
            self.outbox.record_gone(claim, at, outcome.latency_ms, reason)
            self.report.dead += 1
            self.report.disabled.append(claim.endpoint_id)
            log.error("endpoint %s answered 410 Gone: disabled", claim.endpoint_id)
            return
        else:
            kept = self._record_failure(claim, outcome, now)
            log.warning("attempt %d of %s failed: %s", claim.attempt, where, outcome.error)
        if not kept:
            # Our lease ran out and another run took the row over: it will settle it.
            self.report.lost_leases += 1

    def _record_failure(self, claim: Claim, outcome: Outcome, now: datetime) -> bool:
        delay = retry_delay(claim.attempt)
        pause_until = None
        if outcome.status_code in RETRY_AFTER_STATUSES:
            asked = parse_retry_after(outcome.retry_after, now)
            if asked is not None:
                pause_until = now.timestamp() + asked
                delay = None if delay is None else max(delay, asked)
        if delay is None:
            self.report.dead += 1
            log.error("%s is dead after %d attempts", claim.event_id, claim.attempt)
        else:
            self.report.retrying += 1
        return self.outbox.record_failed(
            claim,
            now.timestamp(),
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error or "failed",
            retry_at=None if delay is None else now.timestamp() + delay,
            pause_endpoint_until=pause_until,
        )


def resolve_targets(
    subscriptions: Subscriptions, outbox: Outbox, report: DeliveryReport
) -> dict[str, Target]:
    """Endpoints we can send to now: enabled in the file, not disabled by a 410, with a
    usable secret. Endpoints lacking a secret are held (their rows wait, no attempt is spent)."""
    disabled = outbox.disabled()
    targets: dict[str, Target] = {}
    for endpoint in subscriptions.active():
        if endpoint.id in disabled:
            continue
        try:
            targets[endpoint.id] = Target(endpoint, endpoint.secret())
        except SecretError as problem:
            report.held[endpoint.id] = str(problem)
            log.error("%s", problem)
    return targets


def delivered_retention() -> timedelta:
    """How long delivered rows stay in the outbox (`ALTER_WEBHOOK_RETENTION_DAYS`, 30)."""
    default = DELIVERED_RETENTION.total_seconds() / 86400
    return timedelta(days=retention_days(WEBHOOK_RETENTION_ENV, default))


def deliver_due(
    settings: Settings,
    now: datetime | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    *,
    subscriptions: Subscriptions | None = None,
    clock: Clock | None = None,
    concurrency: int = CONCURRENCY,
    per_endpoint: int = PER_ENDPOINT_CONCURRENCY,
    after_send: AfterSend | None = None,
) -> DeliveryReport:
    """Send every delivery due at `now` (default: the real clock) and return the counts.

    `after_send` runs between the HTTP answer and its recording: tests use it to simulate a
    crash at the worst moment.
    """
    if clock is None:
        clock = fixed_clock(now) if now is not None else system_clock
    subscriptions = subscriptions or load_subscriptions(settings.webhooks_file)
    started = time.monotonic()
    with Outbox.open(settings.data_dir) as outbox:
        outbox.prune((clock() - delivered_retention()).timestamp())
        report = DeliveryReport()
        targets = resolve_targets(subscriptions, outbox, report)
        deliverer = Deliverer(
            outbox,
            targets,
            clock,
            max_batch=max_batch,
            concurrency=concurrency,
            per_endpoint=per_endpoint,
            after_send=after_send,
        )
        deliverer.report = report
        deliverer.run()
    report.elapsed_s = time.monotonic() - started
    return report
