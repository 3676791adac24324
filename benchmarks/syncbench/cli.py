"""`python -m benchmarks.syncbench [--quick] [--results-dir DIR]`: run, print, save.

Full: stores of 10,000, 100,000 and 400,000 orders, about 15 minutes on 2 cores. Quick
(`--quick`, `make bench-quick`, the smoke test in `make test`): tiny stores, one repetition,
under a minute. Results go to DIR/<date>.json and DIR/<date>.png (full: benchmarks/results;
quick: a temporary folder unless --results-dir is given).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks.syncbench import chart, report, scenarios
from benchmarks.syncbench.measure import ROOT
from benchmarks.syncbench.plan import FULL, QUICK, Plan

RESULTS = ROOT / "benchmarks" / "results"
PACKAGES = ("alter-pipeline", "dlt", "duckdb", "pyarrow", "pandas", "httpx", "dagster")


def has_dlt() -> bool:
    return importlib.util.find_spec("dlt") is not None


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def run(plan: Plan, work: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    clock = time.perf_counter()
    session = scenarios.Session(plan, work)
    for orders in plan.scale_orders:
        scenarios.scale_store(session, orders)
    scenarios.main_store(session)
    scenarios.big_store(session)
    scenarios.rate_limited(session)
    scenarios.high_latency(session)
    rows = [m.as_dict() for m in session.measurements]
    results: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - clock, 1),
        "plan": asdict(plan),
        "machine": {"cpus": _cpus(), "python": platform.python_version(), **versions()},
        "emulator": {"latency_ms": 30, "seed": 7, "products": 24},
        "measurements": rows,
        **session.sections,
    }
    results["summary"] = {
        "main": report.medians(rows, plan.main_orders),
        "big": report.medians(rows, plan.big_orders, tag="big"),
    }
    results["targets"] = report.targets(results, plan)
    return results


def analytics_only(plan: Plan) -> None:
    work = Path(tempfile.mkdtemp(prefix="alter-bench-"))
    try:
        session = scenarios.Session(plan, work)
        scenarios.analytics_store(session)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    target = report.analytics_target(session.sections["analytics"])
    print(f"\n{target['target']}: {target['value']} ({target['goal']}): {target['note']}")


def rate_only(plan: Plan) -> None:
    """Only the syncs at the emulator's rate limits (`--rate-only`)."""
    work = Path(tempfile.mkdtemp(prefix="alter-bench-"))
    try:
        session = scenarios.Session(plan, work)
        scenarios.rate_limited(session)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for figures in session.sections["rate_limited"]:
        t = report.targets_of_rate(figures)
        print(f"{t['target']}: {t['value']} ({t['goal']}): {'met' if t['met'] else 'MISSED'}")


def overhead_only(plan: Plan) -> None:
    """Only the run overhead (`--overhead-only`): the CLI against the bare sync."""
    work = Path(tempfile.mkdtemp(prefix="alter-bench-"))
    try:
        session = scenarios.Session(plan, work)
        cli = scenarios.overhead(session)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [m.as_dict() for m in session.measurements]
    ours = report.medians(rows, plan.main_orders)[report.OURS]
    t = report.overhead_target(cli, ours)
    print(f"{t['target']}: {t['value']} ({t['goal']}): {'met' if t['met'] else 'MISSED'}")
    print(f"  {t['note']}; the bare sync's CPU {ours['cpu_s']:.1f} s")


def million_only(plan: Plan, directory: Path) -> None:
    """Only the million-order store (`--million`): full sync, then an incremental one."""
    work = Path(tempfile.mkdtemp(prefix="alter-bench-"))
    started = datetime.now(UTC)
    try:
        session = scenarios.Session(plan, work)
        scenarios.million(session)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = session.sections["million"] | {"started_at": started.isoformat(timespec="seconds")}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{found['started_at'][:10]}-million.json"
    path.write_text(json.dumps(found, indent=1, default=str) + "\n")
    print(f"\nresults: {path}")


def _cpus() -> int | None:
    import os

    return os.cpu_count()


def save(results: dict[str, Any], directory: Path) -> tuple[Path, Path | None]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / results["started_at"][:10]
    if stem.with_suffix(".json").exists():  # a second run that day: keep the first one's
        stem = directory / f"{results['started_at'][:10]}-{results['started_at'][11:16]}"
        stem = stem.with_name(stem.name.replace(":", ""))
    data = stem.with_suffix(".json")
    data.write_text(json.dumps(results, indent=1, default=str) + "\n")
    png = stem.with_suffix(".png")
    return data, png if chart.draw(results, png) else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny stores, one repetition")
    parser.add_argument("--results-dir", type=Path, help="where the JSON and PNG go")
    parser.add_argument(
        "--analytics-only",
        action="store_true",
        help="only the dbt models over the big store (one sync, then the queries)",
    )
    parser.add_argument(
        "--rate-only", action="store_true", help="only the syncs at the emulator's rate limits"
    )
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="only the run overhead: the bare sync and `alter-pipeline sync --full`, alternating",
    )
    parser.add_argument(
        "--million",
        action="store_true",
        help="only the 1,000,000-order store: a full sync, then an incremental one (~15 min)",
    )
    parser.add_argument(
        "--orders",
        type=int,
        help="with --overhead-only: the store's size (a small one shows the fixed part)",
    )
    args = parser.parse_args(argv)
    if args.million:
        quick_dir = Path(tempfile.gettempdir()) / "alter-bench-quick"
        million_only(
            QUICK if args.quick else FULL,
            args.results_dir or (quick_dir if args.quick else RESULTS),
        )
        return
    if args.overhead_only:
        plan = QUICK if args.quick else FULL
        overhead_only(replace(plan, main_orders=args.orders) if args.orders else plan)
        return
    if args.rate_only:
        rate_only(QUICK if args.quick else FULL)
        return
    if args.analytics_only:
        analytics_only(QUICK if args.quick else FULL)
        return
    plan = QUICK if args.quick else FULL
    if not has_dlt():
        print("dlt is not installed (pip install -e '.[bench]'): the dlt contender is skipped")
        plan = replace(plan, contenders=tuple(c for c in plan.contenders if c != "dlt"))
    directory = args.results_dir or (
        Path(tempfile.gettempdir()) / "alter-bench-quick" if args.quick else RESULTS
    )
    work = Path(tempfile.mkdtemp(prefix="alter-bench-"))
    try:
        results = run(plan, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    data, png = save(results, directory)
    print()
    print(report.table(results))
    print(f"\nresults: {data}" + (f"\nchart:   {png}" if png else "\nchart:   (no matplotlib)"))
    print(f"contenders: {', '.join(plan.contenders)}; {results['duration_s']:.0f} s in all")
