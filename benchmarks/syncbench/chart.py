"""The PNG: orders per second against store size, and against concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.syncbench.plan import CONTENDERS

STYLE = {
    "alter-pipeline": ("tab:blue", "o"),
    "limit": ("tab:gray", "s"),
    "dlt": ("tab:orange", "^"),
    "naive": ("tab:red", "v"),
}


def draw(results: dict[str, Any], path: Path) -> bool:
    """Write the chart; False when matplotlib (the bench extra) is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        return False
    figure, (by_size, by_concurrency) = plt.subplots(1, 2, figsize=(11, 4.2))
    _by_size(by_size, results, ticker)
    _by_concurrency(by_concurrency, results)
    figure.suptitle(
        f"Full sync throughput, emulator at 30 ms latency ({results['started_at'][:10]})"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _by_size(axes: Any, results: dict[str, Any], ticker: Any) -> None:
    for name in CONTENDERS:
        points = sorted(_per_size(results["measurements"], name).items())
        if points:
            color, marker = STYLE[name]
            axes.plot(*zip(*points, strict=True), marker=marker, color=color, label=name)
    axes.set(xscale="log", yscale="log", xlabel="orders in the store", ylabel="orders / s")
    sizes = sorted({r["orders_in_store"] for r in results["measurements"]})
    axes.set_xticks(sizes, labels=[f"{s:,}" for s in sizes])
    axes.xaxis.set_minor_locator(ticker.NullLocator())
    axes.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axes.yaxis.set_minor_formatter(ticker.NullFormatter())
    axes.set_title("against store size (c=8 where concurrent)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()


def _per_size(rows: list[dict[str, Any]], name: str) -> dict[int, float]:
    by_size: dict[int, list[float]] = {}
    for row in rows:
        if row["contender"] == name and row["extra"].get("tag") != "sweep":
            by_size.setdefault(row["orders_in_store"], []).append(row["orders_per_s"])
    return {size: sorted(v)[len(v) // 2] for size, v in by_size.items()}


def _by_concurrency(axes: Any, results: dict[str, Any]) -> None:
    rows = results["measurements"]
    swept = [r for r in rows if r["extra"].get("tag") == "sweep"]
    size = swept[0]["orders_in_store"] if swept else 0
    # The sweep skips the default concurrency, measured on the same store already.
    sweep = [r for r in rows if r["orders_in_store"] == size and r["extra"].get("tag") != "big"]
    for name in ("alter-pipeline", "limit"):
        points = sorted(
            (r["concurrency"], r["orders_per_s"]) for r in sweep if r["contender"] == name
        )
        if points:
            color, marker = STYLE[name]
            axes.plot(*zip(*points, strict=True), marker=marker, color=color, label=name)
    for name in ("dlt", "naive"):  # sequential: one point at concurrency 1
        runs = [r for r in sweep if r["contender"] == name]
        if runs:
            color, marker = STYLE[name]
            axes.plot([1], [runs[0]["orders_per_s"]], marker=marker, color=color, label=name)
    axes.set(xscale="log", xlabel="requests in flight", ylabel="orders / s")
    axes.set_xticks([1, 2, 4, 8, 16], labels=["1", "2", "4", "8", "16"])
    axes.set_title(f"against concurrency ({size:,} orders)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
