"""Where a sync's memory and a CLI run's time go, phase by phase (docs/performance.md).

    python -m benchmarks.syncbench.phases memory [--orders 400000]
    python -m benchmarks.syncbench.phases cli [--orders 100000] [--runs 3]

`memory` runs the full sync in this process against the benchmark's emulator (seed 7, 30 ms
latency, in its own process) and samples this process's RSS every 20 ms; the phase is named
by wrapping the sync's own steps (`alter_pipeline.sync`'s module functions), so a peak is
pinned to the step that allocated it.

`cli` runs `alter-pipeline sync --full` and splits its wall time with the run's event log:
the process start to the run's first event (interpreter, imports, definitions, instance, run
record), the steps, and the run's last event to the process exit.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.syncbench.emulator import SYNC_FULL_CLI, Emulator
from benchmarks.syncbench.measure import process_rss

SAMPLE_S = 0.02
SYNC_STEPS = (
    "write_all_orders", "check_full_listing", "write_all_products", "keep_rejected",
    "record_changes", "_write_history",
)  # fmt: skip


class PhaseSampler(threading.Thread):
    """Peak RSS and the time span of each phase named in `phase` while it runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.phase = "imports done"
        self.spans: dict[str, list[float]] = {}  # phase: [first seen, last seen, peak MB]
        self._origin = time.perf_counter()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            now = time.perf_counter() - self._origin
            rss = process_rss(os.getpid()) / 2**20
            span = self.spans.setdefault(self.phase, [now, now, 0.0])
            span[1], span[2] = now, max(span[2], rss)
            time.sleep(SAMPLE_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _named(sampler: PhaseSampler, name: str, step: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(step)
    def named(*args: Any, **kwargs: Any) -> Any:
        sampler.phase = name
        try:
            return step(*args, **kwargs)
        finally:
            sampler.phase = f"after {name}"

    return named


def memory(orders: int) -> None:
    from alter_pipeline import sync  # after the emulator's process started: not its imports
    from alter_pipeline.api import AlterClient, Timeouts
    from alter_pipeline.lake import Lake

    with Emulator(orders) as emu:
        sampler = PhaseSampler()
        for name in SYNC_STEPS:
            setattr(sync, name, _named(sampler, name, getattr(sync, name)))
        sampler.start()
        lake = Path(tempfile.mkdtemp(prefix="alter-phases-"))
        try:
            with AlterClient(emu.base_url, emu.key, emu.token, timeouts=Timeouts(read=60)) as c:
                sync.run_sync(c, Lake(lake), full=True, concurrency=8)
        finally:
            sampler.stop()
            shutil.rmtree(lake, ignore_errors=True)
    print(f"full sync of {orders} orders, RSS of this process by phase:")
    for phase, (first, last, peak) in sampler.spans.items():
        print(f"  {phase:28s} {first:7.2f}-{last:7.2f} s  peak {peak:5.0f} MB")


def cli(orders: int, runs: int) -> None:
    with Emulator(orders) as emu:
        for _ in range(runs):
            data, home = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
            started = time.time()
            env = emu.cli_env(data, home)
            subprocess.run(SYNC_FULL_CLI, env=env, check=True, capture_output=True)
            ended = time.time()
            print(_cli_split(home, started, ended))
            shutil.rmtree(data)
            shutil.rmtree(home)


def _cli_split(home: Path, started: float, ended: float) -> str:
    import dagster as dg  # the bench's own process needs Dagster only here

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        events = instance.all_logs(run.run_id)
    first, last = events[0].timestamp, events[-1].timestamp
    steps: dict[str, list[float]] = {}  # step: [its STEP_START, its last event]
    for event in events:
        if event.step_key and event.dagster_event_type == dg.DagsterEventType.STEP_START:
            steps[event.step_key] = [event.timestamp, event.timestamp]
        elif event.step_key in steps:
            steps[event.step_key][1] = event.timestamp
    first_step = min((begin for begin, _ in steps.values()), default=last)
    parts = [
        f"start to the run's first event {first - started:5.2f} s",
        f"run set-up {first_step - first:5.2f} s",
        *(f"{step} {end - begin:5.2f} s" for step, (begin, end) in steps.items()),
        f"run's last event to exit {ended - last:5.2f} s",
    ]
    return f"CLI {ended - started:5.2f} s: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("memory", "cli"))
    parser.add_argument("--orders", type=int)
    parser.add_argument("--runs", type=int, default=3, help="cli: how many runs")
    args = parser.parse_args()
    if args.what == "memory":
        memory(args.orders or 400_000)
    else:
        cli(args.orders or 100_000, args.runs)


if __name__ == "__main__":
    main()
