"""Ctrl-C that cannot be lost between the moment it arrives and a sync's commit.

In a run executed in-process (the CLI's `run_job`), Dagster's handler turns SIGINT into an
exception raised wherever the main thread happens to be. When that is a garbage-collection
callback or a `__del__` (SQLAlchemy's connection pool has such callbacks), Python prints
"Exception ignored" and carries on: the sync would commit as if nobody had pressed Ctrl-C.
The latch remembers the signal in a flag as well, and the sync asks it before committing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def latched_interrupts() -> Iterator[Callable[[], bool]]:
    """Yield a check that says whether SIGINT arrived inside the block. The handler in place
    still runs (Dagster's raises at once); the latch only adds memory of it. Off the main
    thread, where handlers cannot be installed, the check always says False."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    received = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def remember_then_delegate(signum: int, frame: FrameType | None) -> None:
        received.set()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, remember_then_delegate)
    try:
        yield received.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
