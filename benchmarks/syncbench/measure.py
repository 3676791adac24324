"""Run a command in a subprocess and measure it: wall time, CPU time of the process tree,
peak RSS of the process tree (sampled), and the emulator's request count around it."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_S = 0.02

try:  # the bench extra; without it only the contender's own process is sampled
    import psutil
except ImportError:  # pragma: no cover - depends on the installed extras
    psutil = None


@dataclass
class Measurement:
    contender: str
    orders_in_store: int
    concurrency: int
    rep: int
    wall_s: float  # the work, as the contender timed it (no interpreter start-up)
    process_wall_s: float  # the whole subprocess
    cpu_s: float  # user + system of the process tree
    peak_rss_mb: float  # sum over the process tree, sampled every 20 ms
    requests: int  # as counted by the emulator
    orders: int | None
    items: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def orders_per_s(self) -> float:
        return self.orders_in_store / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"orders_per_s": round(self.orders_per_s, 1)}


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (0 once it is gone)."""
    if psutil is None:
        return process_rss(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def process_rss(pid: int) -> int:
    """Resident bytes of `pid` alone (from /proc; 0 once it is gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop_event.wait(SAMPLE_S)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def emulator_requests(root_url: str) -> int:
    return httpx.get(f"{root_url}/__emulator/stats", timeout=30).json()["total"]


@dataclass
class Run:
    result: dict[str, Any]
    process_wall_s: float
    cpu_s: float
    peak_rss_mb: float
    requests: int


def run_measured(
    command: list[str], root_url: str, env: dict[str, str] | None = None, timeout: float = 1800
) -> Run:
    """Run `command` (its last stdout line is its JSON result) and measure it."""
    before = emulator_requests(root_url)
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = PeakSampler(proc.pid)
    sampler.start()
    out, err = _communicate(proc, timeout)
    # wait4 on an exited child: its rusage covers it and every descendant it waited for.
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    peak = sampler.stop()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({code}):\n{err[-3000:]}")
    peak = max(peak, usage.ru_maxrss * 1024)  # a process too short-lived to be sampled
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    return Run(
        result=result,
        process_wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=peak / 2**20,
        requests=emulator_requests(root_url) - before,
    )


def _communicate(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Read both pipes to the end without reaping the child (wait4 does that)."""
    chunks: dict[str, str] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout), daemon=True),
        threading.Thread(target=drain, args=("err", proc.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    for reader in readers:
        reader.join(max(0.0, deadline - time.monotonic()))
        if reader.is_alive():
            proc.kill()
            raise TimeoutError(f"{proc.args} took longer than {timeout:.0f} s")
    return chunks.get("out", ""), chunks.get("err", "")
