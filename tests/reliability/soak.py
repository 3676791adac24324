"""`make soak` (not part of `make test`): the whole platform for ten minutes under faults, then
checks and figures.

In this process: the emulator in live mode (shoppers create carts, edit quantities, check out,
cancel and delete orders; the merchant purges carts and cancelled orders of any age), at a
realistic rate for the first half and a high one for the second, with faults on (5xx, slow
answers, resets mid-body, a 429 storm, now and then an HTML 200, retried like a 5xx), and a
webhook receiver. In its own process group: `dagster dev` with a fresh DAGSTER_HOME and data
dir, schedules and sensors running (an incremental sync every minute, a reconcile and the
analytics every five, maintenance every five, webhook deliveries and rules from the sensors).
Afterwards the shoppers stop (`pause_live`), a fault-free reconcile and delivery settle the
last changes, and the checks run:

* events: each order's events form an unbroken chain ending in its row; ids unique, sequences
  dense; every event reached the receiver, verified, none twice;
* the tables equal the emulator's state;
* no status transition was applied twice (the emulator logs every PATCH that moved an order);
* no run failed (runs later retried to green are counted apart, and fail the soak too);
* memory of each of dagster's long-lived processes (RSS, sampled every 10 s) is flat: the
  last third of its samples averages within 25% (or 30 MB) of the first third after a
  one-minute warm-up;
* file counts stay bounded: Parquet files per table of the current snapshot, snapshots kept.

    .venv/bin/python tests/reliability/soak.py [--minutes 10] [--orders 2000] [--live-rate 1]
        [--high-rate 20] [--keep]

Prints the figures (and writes them to soak-figures.json in the work dir); exit status 1 when
a check fails. Reads /proc for memory, so it runs on Linux.
"""

from __future__ import annotations

import argparse
import contextlib
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
    TransitionLog,
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
MEMORY_SLACK_MB = 30.0  # small processes wobble by a few MB: growth below this is noise
# Per table: one file per day partition plus today's (compaction), or one file.
MAX_FILES_PER_TABLE = 40


def soak_faults(transitions: TransitionLog) -> list[Fault]:
    return [
        transitions,  # first: it sees the endpoint's own answer
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


def long_lived_rss_mb(root: int) -> dict[int, tuple[float, str]]:
    """RSS (MB) and command of each of dagster's long-lived processes (not per-run workers)."""
    found = {}
    for pid in _descendants(root):
        rss, command = _rss_kb(pid)
        if rss and "execute_run" not in command and "execute_step" not in command:
            found[pid] = (rss / 1024, command)
    return found


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
        "ALTER_MAINTENANCE_CRON": "4-59/5 * * * *",
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


def set_shopper_rate(emulator: RunningEmulator, rate: float) -> None:
    emulator.app.state.runtime.shoppers.rate = rate  # read before each action


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
        reasons = {r.run_id: _failure_reason(instance, r.run_id) for r in runs
                   if r.status.value == "FAILURE"}  # fmt: skip
        for run in runs:
            job = figures.setdefault(run.job_name, Counter())
            interrupted = INTERRUPTED in reasons.get(run.run_id, "")
            job["INTERRUPTED by the soak's stop" if interrupted else run.status.value] += 1
        red, failures = [], []
        for index, run in enumerate(runs):
            if run.status.value != "FAILURE" or INTERRUPTED in reasons[run.run_id]:
                continue
            failures.append(f"{run.job_name} {run.run_id[:8]}: {reasons[run.run_id]}")
            later = [r for r in runs[index + 1 :] if r.job_name == run.job_name]
            if any(r.status.value == "SUCCESS" for r in later):
                figures[run.job_name]["FAILURE retried to green"] += 1
            else:
                red.append(f"{run.job_name} {run.run_id[:8]}")
    return {"per_job": {k: dict(v) for k, v in figures.items()}, "red": red, "failures": failures}


# A run the soak's own SIGTERM to dagster dev cut short: not a failure of the platform.
INTERRUPTED = "DagsterExecutionInterruptedError"


def _failure_reason(instance: Any, run_id: str) -> str:
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value == "STEP_FAILURE":
            error = getattr(event.event_specific_data, "error", None)
            return (error.message if error else record.message).strip()[:300]
    return "(no step failure recorded)"


def memory_figures(samples: list[tuple[float, dict[int, tuple[float, str]]]]) -> dict[str, Any]:
    """Per long-lived process: samples, max RSS, first and last third (after the warm-up)."""
    series: dict[int, list[tuple[float, float]]] = {}
    commands: dict[int, str] = {}
    for elapsed, processes in samples:
        for pid, (rss, command) in processes.items():
            series.setdefault(pid, []).append((elapsed, rss))
            commands[pid] = command
    per_process = []
    for pid, points in series.items():
        if len(points) < len(samples) / 2:
            continue  # short-lived: a run's helpers, not one of dagster dev's own processes
        warm = [p for p in points if p[0] >= WARM_UP_S] or points
        third = max(1, len(warm) // 3)
        first, last = mean(p[1] for p in warm[:third]), mean(p[1] for p in warm[-third:])
        per_process.append({
            "pid": pid,
            "command": _short(commands[pid]),
            "samples": len(points),
            "max_mb": round(max(p[1] for p in points), 1),
            "first_third_mb": round(first, 1),
            "last_third_mb": round(last, 1),
            "growth": round(last / first - 1, 3) if first else 0.0,
            "grew": last - first > max(MEMORY_GROWTH_LIMIT * first, MEMORY_SLACK_MB),
        })  # fmt: skip
    short_lived = len(series) - len(per_process)
    return {"samples": len(samples), "processes": per_process, "short_lived": short_lived}


def _short(command: str) -> str:
    words = [w.rsplit("/", 1)[-1] for w in command.split()[:6]]
    return " ".join(words)[:80]


def file_figures(settings: Settings) -> dict[str, Any]:
    """Parquet files per table of the current snapshot, snapshots kept, SQLite rows."""
    import sqlite3

    lake = Lake(settings.data_dir)
    snapshot = lake.current()
    tables = {}
    if snapshot is not None:
        for table in sorted(snapshot.manifest["tables"]):
            tables[table] = len(list(snapshot.table_dir(table).rglob("*.parquet")))
    snapshots = [
        p for p in (settings.data_dir / "snapshots").iterdir() if not p.name.startswith(".")
    ]
    rows = {}
    for name, path, table in (
        ("outbox_deliveries", settings.data_dir / "webhooks" / "outbox.sqlite", "deliveries"),
        ("ledger_transitions", settings.data_dir / "rules" / "ledger.sqlite", "transitions"),
    ):
        if path.is_file():
            with contextlib.closing(sqlite3.connect(path)) as db:
                rows[name] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return {"parquet_files": tables, "snapshots_kept": len(snapshots), "sqlite_rows": rows}


def check(
    emulator: RunningEmulator, settings: Settings, receiver: Receiver, transitions: TransitionLog
) -> dict[str, Any]:
    lake = Lake(settings.data_dir)
    deliveries = Counter(r.webhook_id for r in receiver.accepted())
    moves = Counter(transitions.moves)
    return {
        "events": len(lake_events(lake)),
        "transitions": len(transitions.moves),
        "transitions_twice": [list(m) for m, n in moves.items() if n > 1][:10],
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
    failed = [name for name in ("event_problems", "delivery_problems", "table_differences",
                                "transitions_twice") if checks[name]]  # fmt: skip
    if checks["delivered_twice"]:
        failed.append("delivered_twice")
    failures = figures["runs"]["failures"]
    if failures:
        failed.append(f"{len(failures)} failed runs ({len(figures['runs']['red'])} never retried)")
    grown = [p["command"] for p in figures["memory"]["processes"] if p["grew"]]
    if grown:
        failed.append("memory growth: " + "; ".join(grown))
    many = [t for t, n in figures["files"]["parquet_files"].items() if n > MAX_FILES_PER_TABLE]
    if many or figures["files"]["snapshots_kept"] > 3:
        failed.append("file counts: " + ", ".join(many or ["snapshots"]))
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument(
        "--live-rate", type=float, default=1.0, help="shopper actions/s, first half"
    )
    parser.add_argument(
        "--high-rate", type=float, default=20.0, help="shopper actions/s, second half"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="alter-soak-"))
    secret = new_secret()
    transitions = TransitionLog()
    config = EmulatorConfig(orders=args.orders, seed=11, live=True, live_rate=args.live_rate,
                            faults=soak_faults(transitions), key=f"soak-key-{os.getpid()}",
                            token=f"soak-token-{os.getpid()}")  # fmt: skip
    emulator = start_emulator(config)
    samples: list[tuple[float, dict[int, tuple[float, str]]]] = []
    high = False
    started = time.monotonic()
    with run_receiver(secret) as receiver:
        env = prepare(root, emulator, receiver, secret)
        dagster = start_dagster(env, root / "dagster-dev.log")
        print(f"soak: {args.minutes:g} min in {root} (dagster dev pid {dagster.pid})", flush=True)
        try:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                if dagster.poll() is not None:
                    raise SystemExit(f"dagster dev exited early; see {root / 'dagster-dev.log'}")
                if not high and elapsed >= args.minutes * 30:
                    set_shopper_rate(emulator, args.high_rate)
                    high = True
                    print(f"soak: shoppers at {args.high_rate:g} actions/s", flush=True)
                samples.append((elapsed, long_lived_rss_mb(dagster.pid)))
                time.sleep(SAMPLE_EVERY_S)
        finally:
            stop_group(dagster)
        emulator.pause_live()
        settings = settle(emulator, env)
        figures = {
            "minutes": args.minutes,
            "shopper_rates": [args.live_rate, args.high_rate],
            "checks": check(emulator, settings, receiver, transitions),
            "runs": run_figures(Path(env["DAGSTER_HOME"])),
            "memory": memory_figures(samples),
            "files": file_figures(settings),
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
