"""Profile one contender with py-spy against the benchmark's emulator (docs/performance.md).

    python -m benchmarks.syncbench.profile [--orders 100000] [--gil] [--out profile.txt]

Starts the emulator (seed 7, 30 ms latency) in its own process, runs the contender under
`py-spy record --threads` (with `--gil`: only samples of the thread holding the GIL, i.e. what
serialises the sync), writes the raw collapsed stacks to `--out` and prints the samples per
thread and the functions with the most samples of their own.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.syncbench.emulator import Emulator
from benchmarks.syncbench.measure import ROOT

IDLE = ("_worker (concurrent/futures/thread.py", "Condition.wait", "EpollSelector.select")


def record(orders: int, contender: str, out: Path, gil: bool) -> None:
    spy = Path(sys.executable).with_name("py-spy")
    with Emulator(orders) as emu:
        lake = tempfile.mkdtemp(prefix="alter-profile-")
        command = [
            str(spy), "record", "--rate", "200", "--format", "raw", "--threads",
            "--output", str(out), *(["--gil"] if gil else []), "--",
            sys.executable, "-m", "benchmarks.syncbench.contenders", contender,
            *emu.client_args(), "--out", lake, "--concurrency", "8", "--now", emu.now,
        ]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        shutil.rmtree(lake, ignore_errors=True)


def summary(raw: Path, top: int = 25) -> str:
    threads: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        if len(frames) < 2 or frames[-1].startswith(IDLE):
            continue
        # py-spy names a thread once Python has named it: the others are start-up samples.
        head = frames[0]
        name = head.split(": ", 1)[1] if ": " in head else "interpreter start-up, imports"
        name = name.rstrip("0123456789_")
        threads[name] += int(count)
        own[frames[-1]] += int(count)
    total = sum(threads.values()) or 1
    lines = ["samples per thread (200 a second, idle waits left out):"]
    lines += [f"  {n:6d} {n / total:6.1%}  {name}" for name, n in threads.most_common()]
    lines.append("functions with the most samples of their own:")
    lines += [f"  {n:6d} {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--contender", default="alter-pipeline")
    parser.add_argument("--gil", action="store_true", help="sample only the GIL holder")
    parser.add_argument("--out", type=Path, default=Path("profile.txt"))
    args = parser.parse_args()
    record(args.orders, args.contender, args.out.resolve(), args.gil)
    print(summary(args.out))
    print(f"raw stacks: {args.out} (flamegraph.pl or speedscope read them)")


if __name__ == "__main__":
    main()
