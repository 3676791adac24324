"""What the outbox holds, per endpoint, and whether work is waiting (for sensors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from alter_pipeline.config import Settings
from alter_pipeline.webhooks.clock import system_clock
from alter_pipeline.webhooks.config import Subscriptions, SubscriptionsError, load_subscriptions
from alter_pipeline.webhooks.intake import lake_max_sequence
from alter_pipeline.webhooks.outbox import Counts, Outbox
from alter_pipeline.webhooks.signing import SecretError


@dataclass(frozen=True)
class EndpointStatus:
    endpoint_id: str
    url: str | None
    state: str  # enabled | disabled | held (no usable secret) | removed (not in the file)
    reason: str | None
    pending: int
    retrying: int
    dead: int
    delivered: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    oldest_pending_age_s: float | None
    paused_until: datetime | None


@dataclass(frozen=True)
class WebhooksStatus:
    endpoints: list[EndpointStatus]
    cursor: int
    lake_sequence: int | None
    next_due_at: datetime | None
    problems: list[str] = field(default_factory=list)

    @property
    def events_waiting(self) -> int:
        """Events in the lake past the cursor (not yet ingested)."""
        return max(0, (self.lake_sequence or 0) - self.cursor)


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _state(
    endpoint_id: str, subscriptions: Subscriptions | None, disabled: dict[str, tuple[float, str]]
) -> tuple[str, str | None, str | None]:
    """(state, why, url) of one endpoint id."""
    endpoint = subscriptions.get(endpoint_id) if subscriptions else None
    url = endpoint.url if endpoint else None
    if endpoint_id in disabled:
        return "disabled", disabled[endpoint_id][1], url
    if subscriptions is not None and endpoint is None:
        return "removed", f"not in {subscriptions.source}", url
    if endpoint is None:
        return "unknown", "subscriptions file unreadable", url
    if not endpoint.enabled:
        source = subscriptions.source if subscriptions is not None else "?"  # found in it
        return "disabled", f"enabled: false in {source}", url
    try:
        endpoint.secret()
    except SecretError as problem:
        return "held", str(problem), url
    return "enabled", None, url


def status(
    settings: Settings, now: datetime | None = None, subscriptions: Subscriptions | None = None
) -> WebhooksStatus:
    """Per endpoint: state and why, counts by state, last success and failure, backlog age."""
    now = now or system_clock()
    problems: list[str] = []
    if subscriptions is None:
        try:
            subscriptions = load_subscriptions(settings.webhooks_file)
        except SubscriptionsError as error:
            problems.append(str(error))
    with Outbox.for_reading(settings.data_dir) as outbox:
        counts = outbox.counts()
        disabled = outbox.disabled()
        ids = [e.id for e in subscriptions.endpoints] if subscriptions else []
        ids += sorted(set(counts) - set(ids))
        endpoints = [
            _endpoint_status(outbox, i, counts.get(i, Counts()), subscriptions, disabled, now)
            for i in ids
        ]
        cursor, next_due = outbox.cursor(), _moment(outbox.next_due_at())
    lake_sequence = lake_max_sequence(settings.data_dir)
    if lake_sequence is not None and lake_sequence < cursor:
        problems.append(
            f"the lake's highest event sequence ({lake_sequence}) is below the webhook cursor "
            f"({cursor}): was order_events rebuilt? New events are ignored until it passes"
        )
    return WebhooksStatus(endpoints, cursor, lake_sequence, next_due, problems)


def _endpoint_status(
    outbox: Outbox,
    endpoint_id: str,
    counts: Counts,
    subscriptions: Subscriptions | None,
    disabled: dict[str, tuple[float, str]],
    now: datetime,
) -> EndpointStatus:
    state, reason, url = _state(endpoint_id, subscriptions, disabled)
    success = outbox.last_attempt(endpoint_id, success=True)
    failure = outbox.last_attempt(endpoint_id, success=False)
    paused = outbox.paused_until(endpoint_id)
    oldest = counts.oldest_pending_at
    return EndpointStatus(
        endpoint_id=endpoint_id,
        url=url,
        state=state,
        reason=reason,
        pending=counts.pending or 0,
        retrying=counts.retrying or 0,
        dead=counts.dead or 0,
        delivered=counts.delivered or 0,
        last_success_at=_moment(success.at if success else None),
        last_failure_at=_moment(failure.at if failure else None),
        last_error=failure.error if failure else None,
        oldest_pending_age_s=None if oldest is None else max(0.0, now.timestamp() - oldest),
        paused_until=_moment(paused) if paused and paused > now.timestamp() else None,
    )


@dataclass(frozen=True)
class PendingWork:
    """For a sensor: is a `deliver_webhooks_job` run worth requesting now?"""

    events_waiting: int
    next_due_at: datetime | None

    def due(self, now: datetime | None = None) -> bool:
        now = now or system_clock()
        return self.events_waiting > 0 or (self.next_due_at is not None and self.next_due_at <= now)


def pending_work(settings: Settings) -> PendingWork:
    """Cheap and read-only: the lake's newest sequence against the cursor, and when the next
    sendable delivery of an enabled endpoint falls due. A sensor tick never writes."""
    lake_sequence = lake_max_sequence(settings.data_dir) or 0
    try:
        active = [e.id for e in load_subscriptions(settings.webhooks_file).active()]
    except SubscriptionsError:
        active = None  # a run will report the file's problems; do not hide due work
    with Outbox.for_reading(settings.data_dir) as outbox:
        waiting = max(0, lake_sequence - outbox.cursor())
        return PendingWork(waiting, _moment(outbox.next_due_at(active)))
