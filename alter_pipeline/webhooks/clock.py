""" "Now", injectable: scheduling reads a clock so tests can step through hours of retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def fixed_clock(moment: datetime) -> Clock:
    """A clock stopped at `moment` (UTC assumed when naive)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return lambda: moment
