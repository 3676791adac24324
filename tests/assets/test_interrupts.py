"""The SIGINT latch: a Ctrl-C is remembered even where Python drops the exception it raised."""

import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from signal_helpers import SigintInFinalizer

from alter_pipeline.assets.interrupts import latched_interrupts


class Interrupted(Exception):
    pass


@pytest.fixture
def raising_handler() -> Iterator[None]:
    """A SIGINT handler that raises, like Dagster's during a step, restored afterwards."""

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGINT, handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_sigint_whose_exception_python_drops_is_still_remembered(
    raising_handler: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    dropped: list[type[BaseException] | None] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type)
    )
    with latched_interrupts() as interrupted:
        SigintInFinalizer()  # collected at once: its finalizer runs here
        assert dropped == [Interrupted]  # the handler in place ran, and Python dropped its raise
        assert interrupted()


def test_the_latch_says_nothing_arrived_when_nothing_did(raising_handler: None) -> None:
    with latched_interrupts() as interrupted:
        assert not interrupted()


def test_the_previous_handler_is_back_after_the_block(raising_handler: None) -> None:
    before = signal.getsignal(signal.SIGINT)
    with latched_interrupts():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
