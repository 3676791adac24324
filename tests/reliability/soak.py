"""`make soak` (not part of `make test`): the whole platform for ten minutes under faults, then
checks and figures.

In this process: the emulator in live mode (shoppers create, edit, check out, cancel and delete
orders) with faults on (5xx, slow answers, resets mid-body, a 429 storm, now and then an HTML
200 that stops a run), and a webhook receiver. In its own process group: `dagster dev` with a
fresh DAGSTER_HOME and data dir, schedules and sensors running (an incremental sync every
minute, a reconcile and the analytics every five, webhook deliveries and rules from the
sensors). Afterwards the shoppers stop, a fault-free reconcile and delivery settle the last
changes, and the checks run:

* events: each order's events form an unbroken chain ending in its row; ids unique, sequences
  dense; every event reached the receiver, none twice;
* the tables equal the emulator's state;
* every run is green, or a later run of the same job is (retried to green);
* memory of dagster's long-lived processes (RSS, sampled every 10 s) is flat: the last third
  of the samples averages within 25% of the first third after a one-minute warm-up.

    .venv/bin/python tests/reliability/soak.py [--minutes 10] [--orders 2000] [--keep]

Prints the figures (and writes them to soak-figures.json in the work dir); exit status 1 when
a check fails. Reads /proc for memory, so it runs on Linux.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reliability_helpers import (
    delivery_problems,
    event_problems,
    lake_events,
    lake_tables,
    new_secret,
    store_tables,
    table_differences,
)

from alter_pipeline.api import AlterClient
from alter_pipeline.config import Settings
from alter_pipeline.emulator import EmulatorConfig, RunningEmulator, start_emulator
from alter_pipeline.emulator.faults import (
    Burst,
    Fault,
    HtmlOkFault,
    RateLimitStorm,
    ResetFault,
    ServerErrorFault,
    SlowFault,
)
from alter_pipeline.lake import Lake
from alter_pipeline.sync import run_sync
from alter_pipeline.webhooks import deliver_due, ingest, pending_work
from alter_pipeline.webhooks.receiver import Receiver, run_receiver

REPO = Path(__file__).resolve().parents[2]
SECRET_ENV = "SOAK_WEBHOOK_SECRET"
SAMPLE_EVERY_S = 10.0
WARM_UP_S = 60.0
MEMORY_GROWTH_LIMIT = 0.25


def soak_faults() -> list[Fault]:
    return [
        ServerErrorFault(0.02, (500, 502, 503, 504)),
        SlowFault(0.01, 1.5),
        ResetFault(0.005, "body"),
        RateLimitStorm(start=300, seconds=3.0),
        Burst(HtmlOkFault(1.0), length=1, start=400, every=900, bursts=None),
    ]


# ---- processes and memory --------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _descendants(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += tree.get(pid, [])
    return found


def _rss_kb(pid: int) -> tuple[int, str]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return 0, ""
    rss = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")), 0
    )
    return rss, command


def long_lived_rss_mb(root: int) -> tuple[float, int]:
    """RSS (MB) and count of dagster's long-lived processes (not the per-run workers)."""
    total, count = 0, 0
    for pid in _descendants(root):
        rss, command = _rss_kb(pid)
        if rss and "execute_run" not in command and "execute_step" not in command:
            total, count = total + rss, count + 1
    return total / 1024, count


# ---- setting up --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(root: Path, emulator: RunningEmulator, receiver: Receiver, secret: str) -> dict:
    home, data = root / "dagster_home", root / "data"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    shutil.copy(REPO / "rules.example.yaml", root / "rules.yaml")
    (root / "webhooks.yaml").write_text(
        f"endpoints:\n  - id: soak\n    url: {receiver.url}/hooks\n"
        f"    events: ['*']\n    secret_env: {SECRET_ENV}\n"
    )
    return {
        **os.environ,
        "ALTER_API_BASE_URL": emulator.base_url,
        "ALTER_API_KEY": emulator.key,
        "ALTER_API_TOKEN": emulator.token,
        "ALTER_DATA_DIR": str(data),
        "DAGSTER_HOME": str(home),
        "ALTER_RULES_FILE": str(root / "rules.yaml"),
        "ALTER_WEBHOOKS_FILE": str(root / "webhooks.yaml"),
        "ALTER_SCHEDULES_RUNNING": "1",
        "ALTER_SYNC_CRON": "* * * * *",
        "ALTER_RECONCILE_CRON": "*/5 * * * *",
        "ALTER_ANALYTICS_CRON": "2-59/5 * * * *",
        SECRET_ENV: secret,
    }


def start_dagster(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "dagster"), "dev", "-w",
               str(REPO / "workspace.yaml"), "-p", str(_free_port())]  # fmt: skip
    with open(log, "wb") as out:
        # Its own process group: dagster dev only stops when its group is signalled.
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def stop_shoppers(emulator: RunningEmulator) -> None:
    runtime = emulator.app.state.runtime
    loop = emulator._server._loop  # the server's event loop runs the shoppers' task
    if runtime.live_task is not None and loop is not None:
        loop.call_soon_threadsafe(runtime.live_task.cancel)
        time.sleep(0.5)


# ---- settling and checking ----------------------------------------------------------------------


def settle(emulator: RunningEmulator, env: dict[str, str]) -> Settings:
    """A fault-free reconcile, then deliveries until nothing is due (stepping the clock)."""
    emulator.set_faults([])
    settings = Settings(
        data_dir=Path(env["ALTER_DATA_DIR"]), webhooks_file=Path(env["ALTER_WEBHOOKS_FILE"])
    )
    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        run_sync(client, Lake(settings.data_dir), full=True, now=emulator.store.now())
    os.environ[SECRET_ENV] = env[SECRET_ENV]
    clock = datetime.now(UTC)
    for _ in range(50):
        ingest(settings)
        deliver_due(settings, now=clock)
        work = pending_work(settings)
        if work.next_due_at is None and not work.events_waiting:
            break
        clock = max(clock, work.next_due_at or clock) + timedelta(seconds=1)
    return settings


def run_figures(home: Path) -> dict[str, Any]:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        runs = sorted(
            instance.get_runs(), key=lambda r: instance.get_run_stats(r.run_id).start_time or 0
        )
        figures: dict[str, Any] = {}
        for run in runs:
            job = figures.setdefault(run.job_name, Counter())
            job[run.status.value] += 1
        red = []
        for index, run in enumerate(runs):
            if run.status.value != "FAILURE":
                continue
            later = [r for r in runs[index + 1 :] if r.job_name == run.job_name]
            if any(r.status.value == "SUCCESS" for r in later):
                figures[run.job_name]["FAILURE retried to green"] += 1
            else:
                red.append(f"{run.job_name} {run.run_id[:8]}")
    return {"per_job": {k: dict(v) for k, v in figures.items()}, "red": red}


def memory_figures(samples: list[tuple[float, float, int]]) -> dict[str, Any]:
    warm = [s for s in samples if s[0] >= WARM_UP_S] or samples
    third = max(1, len(warm) // 3)
    first, last = mean(s[1] for s in warm[:third]), mean(s[1] for s in warm[-third:])
    return {
        "samples": len(samples),
        "first_third_mb": round(first, 1),
        "last_third_mb": round(last, 1),
        "max_mb": round(max(s[1] for s in samples), 1),
        "growth": round(last / first - 1, 3) if first else 0.0,
        "processes": samples[-1][2],
    }


def check(emulator: RunningEmulator, settings: Settings, receiver: Receiver) -> dict[str, Any]:
    lake = Lake(settings.data_dir)
    deliveries = Counter(r.webhook_id for r in receiver.accepted())
    return {
        "events": len(lake_events(lake)),
        "event_problems": event_problems(lake, from_nothing=False)[:10],
        "delivered_unique": len(deliveries),
        "delivered_twice": sum(1 for n in deliveries.values() if n > 1),
        "delivery_problems": delivery_problems(lake, receiver)[:10],
        "table_differences": table_differences(store_tables(emulator.store), lake_tables(lake)),
        "orders": emulator.store.order_count(),
        "shopper_actions": dict(emulator.app.state.runtime.shoppers.actions),
        "api_requests": emulator.counters.as_dict()["statuses"],
    }


def verdict(figures: dict[str, Any]) -> list[str]:
    checks = figures["checks"]
    failed = [name for name in ("event_problems", "delivery_problems", "table_differences")
              if checks[name]]  # fmt: skip
    if checks["delivered_twice"]:
        failed.append("delivered_twice")
    if figures["runs"]["red"]:
        failed.append("red runs")
    if figures["memory"]["growth"] > MEMORY_GROWTH_LIMIT:
        failed.append("memory growth")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--live-rate", type=float, default=5.0)
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="alter-soak-"))
    secret = new_secret()
    config = EmulatorConfig(orders=args.orders, seed=11, live=True, live_rate=args.live_rate,
                            faults=soak_faults(), key=f"soak-key-{os.getpid()}",
                            token=f"soak-token-{os.getpid()}")  # fmt: skip
    emulator = start_emulator(config)
    samples: list[tuple[float, float, int]] = []
    started = time.monotonic()
    with run_receiver(secret) as receiver:
        env = prepare(root, emulator, receiver, secret)
        dagster = start_dagster(env, root / "dagster-dev.log")
        print(f"soak: {args.minutes:g} min in {root} (dagster dev pid {dagster.pid})", flush=True)
        try:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                if dagster.poll() is not None:
                    raise SystemExit(f"dagster dev exited early; see {root / 'dagster-dev.log'}")
                samples.append((elapsed, *long_lived_rss_mb(dagster.pid)))
                time.sleep(SAMPLE_EVERY_S)
        finally:
            stop_group(dagster)
        stop_shoppers(emulator)
        settings = settle(emulator, env)
        figures = {
            "minutes": args.minutes,
            "checks": check(emulator, settings, receiver),
            "runs": run_figures(Path(env["DAGSTER_HOME"])),
            "memory": memory_figures(samples),
        }
    emulator.stop()
    figures["failed"] = verdict(figures)
    (root / "soak-figures.json").write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))
    if not args.keep and not figures["failed"]:
        shutil.rmtree(root, ignore_errors=True)
    print("soak: " + ("FAILED " + ", ".join(figures["failed"]) if figures["failed"] else "ok"))
    return 1 if figures["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
