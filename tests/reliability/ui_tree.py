"""A stand-in for `alter-pipeline ui` in the lifecycle tests: `ProcessGroups` supervising two
children that each start a grandchild, all four ignoring SIGINT, SIGTERM and SIGHUP (as
`dagster dev` does when started from a non-interactive shell), so only SIGKILL stops them.

`python ui_tree.py` prints `ready <pgid> <pgid>` once the children are started;
`python ui_tree.py stubborn parent|child` is one of the stubborn processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def stubborn(role: str) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    if role == "parent":
        subprocess.Popen([sys.executable, __file__, "stubborn", "child"])
    time.sleep(600)


def supervise() -> None:
    from alter_pipeline.ui import ProcessGroups, exit_code_on_stop

    with exit_code_on_stop(), ProcessGroups(grace_s=0.5) as groups:
        command = [sys.executable, __file__, "stubborn", "parent"]
        started = [groups.start(command, env={}) for _ in range(2)]
        print("ready", *(child.pid for child in started), flush=True)
        groups.wait_any()


if __name__ == "__main__":
    if sys.argv[1:2] == ["stubborn"]:
        stubborn(sys.argv[2])
    else:
        supervise()
