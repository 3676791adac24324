"""Timeouts, the retry policy and the per-call retry decision shared by the sync and async paths.

Retried: connection errors, timeouts, 429, 500, 502, 503 and 504, and a 2xx whose body is not
JSON at all (an HTML page from a proxy or captive portal, an empty or truncated body: what a
maintenance page or a cut connection leaves), with exponential backoff and
full jitter (sleep uniformly in [0, min(max_delay, base_delay * 2**(attempt-1))]), or exactly
the server's `Retry-After` (seconds or an HTTP date) when it sends one. Bounded by
`max_attempts` and by a total `deadline` per call: a wait that would end past the deadline is not
taken, the call fails at once instead. Any other 4xx is final.

Whether a failure may be retried also depends on the endpoint (`Safety`):

* `Safety.IDEMPOTENT` — reads, the batch read (a POST that reads), the set-to-value PATCHes and
  DELETE. Repeating them leaves the same state, so every retryable failure is retried, even
  when the request may already have reached the server.
* `Safety.NOT_IDEMPOTENT` — creating an embed session. Retried only when the request provably
  was not processed: the connection could not be opened (connect error or connect/pool
  timeout), or the server answered 429 (it refused the request). After a read timeout, a reset
  connection or a 5xx the server may have created a session, so the error is raised.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

logger = logging.getLogger("alter_pipeline.api")

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})

# Failures where the request never left the client: safe to repeat for any endpoint.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures after the request may have reached the server: repeat only idempotent calls.
_MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class Safety(enum.Enum):
    IDEMPOTENT = "idempotent"
    NOT_IDEMPOTENT = "not idempotent"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `read` bounds the wait for each chunk of the response, not the whole body."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Timeouts.{name} must be > 0 seconds")

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` counts the first try; `deadline` bounds one call's attempts and waits."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    deadline: float = 120.0
    # Injectable for tests; the module-level generator is fine for jitter (not security).
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must be >= 0")
        if self.deadline <= 0:
            raise ValueError("RetryPolicy.deadline must be > 0 seconds")

    def backoff(self, attempt: int) -> float:
        """Full jitter after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return self.rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date; else None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def provably_not_sent(error: httpx.HTTPError) -> bool:
    return isinstance(error, _NOT_SENT)


def is_transient(error: httpx.HTTPError) -> bool:
    return isinstance(error, _NOT_SENT + _MAYBE_SENT)


class RetryState:
    """The attempts of one call. Both the sync client and the async pager drive it:

    state = RetryState(...)
    while True:
        outcome = <send>
        delay = state.after_response(status, retry_after) / state.after_error(error)
        if delay is None: <stop: return or raise>
        <sleep delay>
    """

    def __init__(self, policy: RetryPolicy, method: str, path: str, safety: Safety) -> None:
        self.policy = policy
        self.method = method
        self.path = path
        self.safety = safety
        self.attempt = 0
        # Set when an earlier attempt may have taken effect on the server (DELETE uses it).
        self.maybe_applied = False
        self._started = time.monotonic()

    def begin(self) -> None:
        self.attempt += 1

    def remaining(self) -> float:
        return self.policy.deadline - (time.monotonic() - self._started)

    def after_response(self, status: int, retry_after: float | None) -> float | None:
        """Delay before the next attempt after an HTTP status, or None when it is final."""
        if status not in RETRYABLE_STATUSES:
            return None
        if status != 429 and self.safety is Safety.NOT_IDEMPOTENT:
            return None  # a 5xx may come after the side effect: do not repeat it
        if status != 429:
            self.maybe_applied = True
        return self._next_delay(str(status), retry_after)

    def after_error(self, error: httpx.HTTPError, reason: str) -> float | None:
        """Delay before the next attempt after a transport failure, or None when it is final."""
        if not is_transient(error):
            return None
        if not provably_not_sent(error):
            if self.safety is Safety.NOT_IDEMPOTENT:
                return None
            self.maybe_applied = True
        return self._next_delay(reason, None)

    def after_bad_body(self, reason: str) -> float | None:
        """Delay before the next attempt after a 2xx whose body is not JSON, or None when final.

        Such a body comes from something between us and the API (a proxy's maintenance page,
        a connection cut at a message boundary), like a 502 does: retried on the same terms as
        a 5xx. Not for a call that is not idempotent: the server may have acted on it."""
        if self.safety is Safety.NOT_IDEMPOTENT:
            return None
        self.maybe_applied = True
        return self._next_delay(reason, None)

    def _next_delay(self, reason: str, retry_after: float | None) -> float | None:
        if self.attempt >= self.policy.max_attempts:
            return None
        delay = retry_after if retry_after is not None else self.policy.backoff(self.attempt)
        if delay >= self.remaining():
            # Sleeping past the deadline only to fail later helps nobody: give up now.
            logger.warning(
                "not retrying %s %s after %s: wait of %.2fs exceeds the %.2fs left of the deadline",
                self.method,
                self.path,
                reason,
                delay,
                max(0.0, self.remaining()),
            )
            return None
        logger.info(
            "retrying %s %s after %s (attempt %d of %d) in %.2fs",
            self.method,
            self.path,
            reason,
            self.attempt,
            self.policy.max_attempts,
            delay,
        )
        return delay
