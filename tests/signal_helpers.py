"""Signals sent where Python cannot raise what their handler raises."""

import os
import signal
import subprocess
from pathlib import Path


class SigintInFinalizer:
    """Sends SIGINT to this process from `__del__`, where Python reports whatever the handler
    raises to `sys.unraisablehook` and carries on (as in SQLAlchemy's pool's GC callbacks)."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at one of these loop edges, inside __del__
            pass


SIGNAL_FIELDS = ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")


def _signal_state(pid: int | str) -> str:
    """The lines of /proc/PID/status that say how a process takes signals (masks in hex)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(SIGNAL_FIELDS))


def terminate_or_explain(
    proc: subprocess.Popen[str], stderr: Path | None = None, timeout_s: float = 10
) -> int:
    """SIGTERM `proc` and wait for it. If it outlives the wait, fail saying why: its signal
    masks and this process's, then (a child started with `-X faulthandler` and stderr to a
    file) every thread's stack, which SIGABRT makes faulthandler print."""
    proc.terminate()
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        child, parent = _signal_state(proc.pid), _signal_state("self")
        proc.send_signal(signal.SIGABRT)
        proc.wait(10)
        stacks = stderr.read_text() if stderr is not None else "(stderr not kept)"
        raise AssertionError(
            f"pid {proc.pid} still running {timeout_s} s after SIGTERM; child: {child}; "
            f"parent: {parent}; child's stderr:\n{stacks}"
        ) from None
