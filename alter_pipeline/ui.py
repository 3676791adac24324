"""`make ui`: a live emulator plus `dagster dev`, each in its own process group.

`dagster dev` started from a non-interactive parent ignores SIGINT/SIGTERM unless it leads its
own process group, so both children get one and are stopped by signalling the group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from alter_pipeline.emulator.config import BASE_PATH, DEMO_KEY, DEMO_TOKEN
from alter_pipeline.instance import resolve_dagster_home


def run_ui(*, port: int, emulator_port: int, orders: int) -> None:
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ,
        ALTER_API_BASE_URL=f"http://127.0.0.1:{emulator_port}{BASE_PATH}",
        ALTER_API_KEY=os.environ.get("ALTER_API_KEY") or DEMO_KEY,
        ALTER_API_TOKEN=os.environ.get("ALTER_API_TOKEN") or DEMO_TOKEN,
        ALTER_SCHEDULES_RUNNING="1",
        ALTER_SYNC_CRON=os.environ.get("ALTER_SYNC_CRON", "* * * * *"),
        DAGSTER_HOME=str(resolve_dagster_home(os.environ)),
    )
    emulator_cmd = [
        str(bin_dir / "alter-pipeline"), "emulator", "--live", "--port", str(emulator_port),
        "--orders", str(orders), "--key", env["ALTER_API_KEY"], "--token", env["ALTER_API_TOKEN"],
    ]  # fmt: skip
    dagster_cmd = [str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port)]
    children = [
        subprocess.Popen(emulator_cmd, env=env, start_new_session=True),
    ]
    time.sleep(2)
    children.append(subprocess.Popen(dagster_cmd, env=env, start_new_session=True))
    print(f"Dagster UI on http://127.0.0.1:{port} (Ctrl-C stops it and the emulator)")
    # SIGTERM (e.g. from a supervisor) must also reach the `finally` that stops the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        children[-1].wait()
    except KeyboardInterrupt:
        pass
    finally:
        for child in reversed(children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                child.wait(15)
