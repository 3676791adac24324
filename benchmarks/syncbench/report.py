"""Medians, ratios and targets of a run; the table printed at the end."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.syncbench.plan import CONTENDERS, Plan

OURS = "alter-pipeline"
MEMORY_LIMIT_MB = 400.0
MEMORY_GROWTH = 0.25
DLT_SPEEDUP = 5.0
LIMIT_SHARE = 0.80
CLI_OVERHEAD_S = 3.0  # what `alter-pipeline sync --full` may add to the sync's own work
HIGH_LATENCY_SHARE = 0.80
INCREMENTAL_SHARE = 0.05
RATE_SHARE = 0.90  # of the emulator's --rate-limit, in accepted requests a second
RATE_THROTTLED = 0.02  # of the requests answered 429
ANALYTICS_MS = 250.0
ANALYTICS_ITEMS = 1_000_000


def medians(rows: list[dict[str, Any]], orders: int, tag: str = "") -> dict[str, dict[str, Any]]:
    """Per contender, the medians of its runs on the store of `orders` orders."""
    summary: dict[str, dict[str, Any]] = {}
    for name in (*CONTENDERS, f"{OURS}-incremental"):
        runs = [
            r
            for r in rows
            if r["contender"] == name
            and r["orders_in_store"] == orders
            and r["extra"].get("tag", "") == tag
        ]
        if runs:
            summary[name] = _median_of(runs)
    return summary


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    figures = ("wall_s", "process_wall_s", "orders_per_s", "requests", "peak_rss_mb", "cpu_s")
    row: dict[str, Any] = {f: statistics.median(r[f] for r in runs) for f in figures}
    row.update(runs=len(runs), orders=runs[-1]["orders"], items=runs[-1]["items"])
    row["concurrency"] = runs[-1]["concurrency"]
    return row


def targets(results: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    main = results["summary"]["main"]
    ours = main[OURS]
    found = [_dlt_target(main), _limit_target(main), overhead_target(results.get("cli"), ours)]
    found.append(_incremental_target(results.get("incremental"), ours))
    found += _memory_targets(results, plan)
    found.append(analytics_target(results.get("analytics")))
    found += [targets_of_rate(r) for r in results.get("rate_limited", [])]
    if high := results.get("high_latency"):
        found.append(high_latency_target(high))
    return found


def high_latency_target(high: dict[str, Any]) -> dict[str, Any]:
    share = high[OURS]["orders_per_s"] / high["limit"]["orders_per_s"]
    value = f"{share:.0%} ({high[OURS]['wall_s']:.1f} s against {high['limit']['wall_s']:.1f} s)"
    note = f"{high['orders_in_store']} orders, CPU {high[OURS]['cpu_s']:.1f} s"
    name = f"share of the limit at {high['latency_ms']:g} ms"
    return _target(name, value, ">= 80%", share >= HIGH_LATENCY_SHARE, note)


def targets_of_rate(r: dict[str, Any]) -> dict[str, Any]:
    value = (
        f"{r['share_of_limit']:.0%} of R, {r['throttled_share']:.1%} 429s "
        f"({r['throttled']} of {r['requests']})"
    )
    met = (
        r["share_of_limit"] >= RATE_SHARE
        and r["throttled_share"] <= RATE_THROTTLED
        and r["orders_ok"]
    )
    note = f"{r['orders_in_store']} orders, settled at {r['window']} in flight, {r['pace']}/s"
    if not r["orders_ok"]:
        note += ", ORDERS DIFFER"
    return _target(f"polite at --rate-limit {r['rate_limit']:g}", value, ">= 90%, <= 2%", met, note)


def _target(name: str, value: str, goal: str, met: bool, note: str = "") -> dict[str, Any]:
    return {"target": name, "value": value, "goal": goal, "met": met, "note": note}


def _dlt_target(main: dict[str, Any]) -> dict[str, Any]:
    ours, peer = main[OURS], main.get("dlt")
    if peer is None:
        return _target("full sync vs dlt", "dlt not installed", ">= 5x faster", False)
    speedup = peer["wall_s"] / ours["wall_s"]
    same = (ours["orders"], ours["items"]) == (peer["orders"], peer["items"])
    note = "same order and item counts" if same else "COUNTS DIFFER"
    return _target(
        "full sync vs dlt", f"{speedup:.1f}x faster", ">= 5x", speedup >= DLT_SPEEDUP and same, note
    )


def _limit_target(main: dict[str, Any]) -> dict[str, Any]:
    share = main[OURS]["orders_per_s"] / main["limit"]["orders_per_s"]
    same = main[OURS]["requests"] == main["limit"]["requests"]
    note = f"{main['limit']['requests']:.0f} requests each" if same else "REQUESTS DIFFER"
    return _target(
        "share of the raw-fetch limit", f"{share:.0%}", ">= 80%", share >= LIMIT_SHARE, note
    )


def overhead_target(cli: dict[str, Any] | None, ours: dict[str, Any]) -> dict[str, Any]:
    """The CLI's whole process against the same sync timed inside a bare process: what Python
    start-up, Dagster (definitions, run records, checks, metadata) and the CLI add."""
    goal = f"<= {CLI_OVERHEAD_S:g} s"
    if cli is None:
        return _target("run overhead (CLI)", "not measured", goal, False)
    overhead = cli["wall_s"] - ours["wall_s"]
    value = f"{overhead:.1f} s ({cli['wall_s']:.1f} s against {ours['wall_s']:.1f} s)"
    runs = f", median of {cli['runs']} runs" if cli.get("runs", 1) > 1 else ""
    note = f"{cli['orders_in_store']} orders{runs}, CLI CPU {cli['cpu_s']:.1f} s"
    return _target("run overhead (CLI)", value, goal, overhead <= CLI_OVERHEAD_S, note)


def _incremental_target(inc: dict[str, Any] | None, ours: dict[str, Any]) -> dict[str, Any]:
    if inc is None:
        return _target("incremental requests", "not measured", "<= 5%", False)
    share = inc["requests"] / ours["requests"]
    complete = inc["changes_missing"] == 0
    note = f"{inc['touched']} orders touched, {inc['changes_missing']} changes missing"
    if spent := inc.get("requests_spent"):
        note += "; spent on " + ", ".join(f"{k} {n}" for k, n in spent.items() if n)
    value = f"{inc['requests']} = {share:.1%} of a full sync"
    return _target(
        "incremental requests", value, "<= 5%, all changes", share <= 0.05 and complete, note
    )


def _memory_targets(results: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    main = results["summary"]["main"][OURS]["peak_rss_mb"]
    big_runs = results["summary"]["big"].get(OURS)
    found = [_target("peak memory", f"{main:.0f} MB", "< 400 MB", main < MEMORY_LIMIT_MB)]
    if big_runs:
        growth = big_runs["peak_rss_mb"] / main - 1
        value = f"{growth:+.0%} ({main:.0f} -> {big_runs['peak_rss_mb']:.0f} MB)"
        goal = f"< +25% from {plan.main_orders} to {plan.big_orders} orders"
        found.append(_target("memory growth", value, goal, growth < MEMORY_GROWTH))
    return found


def analytics_target(analytics: dict[str, Any] | None) -> dict[str, Any]:
    if analytics is None:
        return _target("analytics queries", "not measured", "< 250 ms each", False)
    slowest = max(analytics["median_ms"], key=analytics["median_ms"].get)
    worst = analytics["median_ms"][slowest]
    note = f"slowest: {slowest}, over {analytics['items']} items"
    met = worst < ANALYTICS_MS and analytics["items"] >= ANALYTICS_ITEMS
    if analytics["items"] < ANALYTICS_ITEMS:
        note += " (fewer than 1,000,000 items: not the target's size)"
    return _target("analytics queries", f"{worst:.0f} ms", "< 250 ms each", met, note)


# ---- printing ------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    plan = results["plan"]
    main = results["summary"]["main"]
    ours = main[OURS]
    lines = [
        f"Full sync of {plan['main_orders']:,} orders, emulator latency 30 ms, seed 7, "
        f"medians of {plan['reps']} runs ({plan['slow_reps']} for dlt, "
        f"{plan.get('naive_reps', plan['slow_reps'])} for naive):",
        "",
        "| contender | wall s | orders/s | vs alter-pipeline | requests | peak RSS MB | CPU s "
        "| orders | items |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in main.items():
        if name.endswith("incremental"):
            continue
        ratio = row["wall_s"] / ours["wall_s"]
        lines.append(
            f"| {name} (c={row['concurrency']}) | {row['wall_s']:.1f} | {row['orders_per_s']:,.0f} "
            f"| {ratio:.2f}x time | {row['requests']:,.0f} | {row['peak_rss_mb']:.0f} "
            f"| {row['cpu_s']:.1f} | {_count(row['orders'])} | {_count(row['items'])} |"
        )
    lines += ["", *_extras(results), "", "| target | measured | goal | met | note |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for t in results["targets"]:
        mark = "met" if t["met"] else "MISSED"
        lines.append(f"| {t['target']} | {t['value']} | {t['goal']} | {mark} | {t['note']} |")
    return "\n".join(lines)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _extras(results: dict[str, Any]) -> list[str]:
    lines = []
    if cli := results.get("cli"):
        lines.append(
            f"- `alter-pipeline sync --full` (Dagster start-up and run records included): "
            f"{cli['wall_s']:.1f} s, peak {cli['peak_rss_mb']:.0f} MB"
            + (
                f" (runs: {', '.join(f'{w:.1f}' for w in cli['walls_s'])} s)"
                if "walls_s" in cli
                else ""
            )
        )
    if inc := results.get("incremental"):
        lines.append(
            f"- incremental sync after an hour of shoppers ({inc['touched']} orders touched): "
            f"{inc['requests']} requests, {inc['wall_s']:.1f} s, "
            f"{inc['changes_missing']} changes missing"
            + (f", peak {inc['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in inc else "")
        )
    for name, row in results["summary"]["big"].items():
        lines.append(
            f"- {name} at {results['plan']['big_orders']:,} orders: {row['wall_s']:.1f} s, "
            f"{row['orders_per_s']:,.0f} orders/s, peak {row['peak_rss_mb']:.0f} MB"
        )
    if analytics := results.get("analytics"):
        timings = ", ".join(f"{k} {v:.0f}" for k, v in analytics["median_ms"].items())
        lines.append(f"- analytics over {analytics['items']:,} items (ms): {timings}")
    return lines
