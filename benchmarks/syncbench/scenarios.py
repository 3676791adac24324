"""The parts of a run: contenders on a store, the concurrency sweep, the CLI, the incremental
sync after an hour of shoppers, memory at a larger store, the analytics queries."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.syncbench.emulator import SYNC_FULL_CLI, Emulator
from benchmarks.syncbench.measure import Measurement, run_measured
from benchmarks.syncbench.plan import FAST, Plan, reps_of, rotation

OURS = "alter-pipeline"


@dataclass
class Session:
    """One benchmark run: its plan, scratch directory and everything measured so far."""

    plan: Plan
    work: Path
    measurements: list[Measurement] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)

    def scratch(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.work))

    def measure(
        self,
        emu: Emulator,
        name: str,
        rep: int,
        *,
        concurrency: int | None = None,
        out: Path | None = None,
        tag: str = "",
    ) -> tuple[Measurement, Path]:
        """Run contender `name` once against `emu`; returns its figures and output folder."""
        concurrency = concurrency or self.plan.concurrency
        out = out or self.scratch(name)
        command = [
            sys.executable, "-m", "benchmarks.syncbench.contenders", name, *emu.client_args(),
            "--out", str(out), "--concurrency", str(concurrency), "--now", emu.now,
        ]  # fmt: skip
        run = run_measured(command, emu.root_url)
        result = dict(run.result)
        measurement = Measurement(
            contender=name,
            orders_in_store=emu.orders,
            concurrency=concurrency if name in FAST or name.startswith(OURS) else 1,
            rep=rep,
            wall_s=result.pop("work_s", run.process_wall_s),
            process_wall_s=run.process_wall_s,
            cpu_s=run.cpu_s,
            peak_rss_mb=run.peak_rss_mb,
            requests=run.requests,
            orders=result.pop("orders", None),
            items=result.pop("items", None),
            extra=result | ({"tag": tag} if tag else {}),
        )
        self.measurements.append(measurement)
        _progress(measurement)
        return measurement, out


def _progress(m: Measurement) -> None:
    print(
        f"  {m.contender:<27} {m.orders_in_store:>7} orders  c={m.concurrency:<2} rep {m.rep}: "
        f"{m.wall_s:7.2f} s  {m.orders_per_s:8.0f} orders/s  {m.requests:>5} requests  "
        f"{m.peak_rss_mb:6.0f} MB  cpu {m.cpu_s:6.1f} s",
        flush=True,
    )


# ---- store sizes and concurrency -----------------------------------------------------------


def scale_store(session: Session, orders: int) -> None:
    """Every contender once on a smaller store, then the concurrency sweep of the two
    contenders that page concurrently."""
    print(f"store of {orders} orders: every contender, then concurrency sweep", flush=True)
    with Emulator(orders) as emu:
        for name in session.plan.contenders:
            _, out = session.measure(emu, name, 0, tag="scale")
            shutil.rmtree(out)
        if orders == session.plan.scale_orders[0]:
            sweep(session, emu)


def sweep(session: Session, emu: Emulator) -> None:
    """The concurrently paging contenders (the plan's `swept`) at each concurrency but the
    default (measured already on this store)."""
    for concurrency in session.plan.concurrencies:
        if concurrency == session.plan.concurrency:
            continue
        for name in session.plan.swept:
            _, out = session.measure(emu, name, 0, concurrency=concurrency, tag="sweep")
            shutil.rmtree(out)


# ---- the main store ------------------------------------------------------------------------


def main_store(session: Session) -> None:
    plan = session.plan
    print(f"store of {plan.main_orders} orders: {plan.reps} repetitions, alternating", flush=True)
    with Emulator(plan.main_orders) as emu:
        lake, cli_runs = _repetitions(session, emu)
        if not plan.scale_orders:
            sweep(session, emu)
        if cli_runs:
            session.sections["cli"] = _cli_medians(cli_runs, plan.main_orders)
        session.sections["incremental"] = incremental(session, emu, lake)
    shutil.rmtree(lake)


def _repetitions(session: Session, emu: Emulator) -> tuple[Path, list[dict[str, Any]]]:
    """Every contender, `reps` times (dlt `slow_reps`, naive `naive_reps`), in a rotating order;
    with the plan's `cli`, `alter-pipeline sync --full` right after each bare alter-pipeline
    run, so the overhead is a median against a median measured under the same load.
    Returns the lake of alter-pipeline's last run (for the incremental sync) and the CLI's."""
    lake: Path | None = None
    cli_runs: list[dict[str, Any]] = []
    for rep in range(session.plan.reps):
        for name in rotation(session.plan.contenders, rep):
            if rep >= reps_of(session.plan, name):
                continue
            _, out = session.measure(emu, name, rep)
            if name == OURS:
                if lake is not None:
                    shutil.rmtree(lake)
                lake = out
                if session.plan.cli:
                    cli_runs.append(cli_full_sync(session, emu))
            else:
                shutil.rmtree(out)
    assert lake is not None
    return lake, cli_runs


def overhead(session: Session) -> dict[str, Any]:
    """Only the run overhead (`--overhead-only`): on the main store, the sync in a bare process
    and `alter-pipeline sync --full`, alternating, `reps` times each."""
    plan = session.plan
    runs = []
    with Emulator(plan.main_orders) as emu:
        for rep in range(plan.reps):
            _, out = session.measure(emu, OURS, rep)
            shutil.rmtree(out)
            runs.append(cli_full_sync(session, emu))
    return _cli_medians(runs, plan.main_orders)


def _cli_medians(runs: list[dict[str, Any]], orders: int) -> dict[str, Any]:
    cli = {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "peak_rss_mb")}
    return cli | {
        "orders_in_store": orders,
        "runs": len(runs),
        "walls_s": [round(r["wall_s"], 2) for r in runs],
    }


def cli_full_sync(session: Session, emu: Emulator) -> dict[str, Any]:
    """`alter-pipeline sync --full` as a user runs it: Dagster loads the definitions, runs
    sync_job in process and records it."""
    data, home = session.scratch("cli-data"), session.scratch("cli-dagster")
    run = run_measured(SYNC_FULL_CLI, emu.root_url, env=emu.cli_env(data, home))
    shutil.rmtree(data)
    shutil.rmtree(home)
    print(f"  alter-pipeline sync --full (CLI) {run.process_wall_s:7.2f} s", flush=True)
    return {
        "orders_in_store": emu.orders,
        "wall_s": run.process_wall_s,
        "cpu_s": run.cpu_s,
        "peak_rss_mb": run.peak_rss_mb,
        "requests": run.requests,
    }


# ---- incremental ---------------------------------------------------------------------------


def incremental(session: Session, emu: Emulator, lake: Path, tag: str = "") -> dict[str, Any]:
    plan = session.plan
    store = emu.mutate(plan.touched_fraction, plan.store_hour_s)
    touched = store["touched"]
    print(f"  an hour of shoppers: {len(touched)} orders touched ({store['actions']})", flush=True)
    measurement, _ = session.measure(emu, f"{OURS}-incremental", 0, out=lake, tag=tag)
    missing = check_changes(lake, touched)
    spent = requests_spent(measurement)
    print(f"  its requests: {', '.join(f'{n} {k}' for k, n in spent.items())}", flush=True)
    return {
        "orders_in_store": emu.orders,
        "touched": len(touched),
        "actions": store["actions"],
        "requests": measurement.requests,
        "requests_spent": spent,
        "wall_s": measurement.wall_s,
        "peak_rss_mb": measurement.peak_rss_mb,
        "changes_missing": len(missing),
        "missing_examples": missing[:5],
    }


def requests_spent(m: Measurement) -> dict[str, int]:
    """What an incremental sync's requests went on: the batch re-reads of the orders that may
    have changed (50 ids a request; the self-check's confirmations of what it found are in
    the remainder), the newest end of the list (new orders and `total`), locating
    differences (deletions of old orders: ~4 page reads each), per-status totals and their
    locating, a full listing of the orders (where the check escalated to one), the products
    listing, and the rest (credentials check, confirmations)."""
    check = m.extra.get("self_check") or {}
    reread = int(m.extra.get("reread") or 0)
    spent = {
        "orders listing (escalated)": int(m.extra.get("order_pages") or 0),
        "re-reads": -(-reread // 50),
        "newest end": int(check.get("total_reads", 0)),
        "locating": int(check.get("locate_reads", 0)),
        "status totals": int(check.get("status_reads", 0)),
        "products": int(m.extra.get("product_pages") or 0),
    }
    spent["other"] = m.requests - sum(spent.values())
    return spent


def check_changes(lake: Path, touched: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The touched orders whose state in the tables differs from the emulator's."""
    import duckdb

    orders = (lake / "lake" / "orders" / "*.parquet").as_posix()
    items = (lake / "lake" / "order_items" / "*.parquet").as_posix()
    with duckdb.connect() as con:
        statuses = dict(con.execute(f"SELECT order_id, status FROM '{orders}'").fetchall())
        lines: dict[int, list[tuple[int, int]]] = {}
        rows = con.execute(
            f"SELECT order_id, order_item_id, quantity FROM '{items}' ORDER BY 1, 2"
        ).fetchall()
    for order_id, item_id, quantity in rows:
        lines.setdefault(order_id, []).append((item_id, quantity))
    return [t for t in touched if _state_in_tables(t, statuses, lines) != _expected(t)]


def _expected(touched: dict[str, Any]) -> tuple[Any, ...]:
    if touched.get("deleted"):
        return (None, [])
    return (touched["status"], [tuple(pair) for pair in touched["items"]])


def _state_in_tables(
    touched: dict[str, Any], statuses: dict[int, str], lines: dict[int, list[tuple[int, int]]]
) -> tuple[Any, ...]:
    order_id = touched["id"]
    return (statuses.get(order_id), lines.get(order_id, []))


# ---- an API across an ocean ---------------------------------------------------------------


def high_latency(session: Session) -> None:
    """The main store at `high_latency_ms` added to every reply: ours against the limit, once
    each, at the same concurrency ceiling."""
    latency = session.plan.high_latency_ms
    orders = session.plan.main_orders
    print(f"store of {orders} orders at {latency:g} ms latency", flush=True)
    found: dict[str, Any] = {"latency_ms": latency, "orders_in_store": orders}
    with Emulator(orders, latency_ms=latency) as emu:
        for name in FAST:
            measurement, out = session.measure(emu, name, 0, tag=f"latency-{latency:g}")
            shutil.rmtree(out)
            found[name] = {
                "wall_s": measurement.wall_s,
                "orders_per_s": measurement.orders_per_s,
                "cpu_s": measurement.cpu_s,
                "requests": measurement.requests,
                "peak_rss_mb": measurement.peak_rss_mb,
            }
    session.sections["high_latency"] = found


# ---- politeness at a rate limit ------------------------------------------------------------


def rate_limited(session: Session) -> None:
    """A full sync against the emulator's `--rate-limit R`, for each R of the plan: the store
    holds about `rate_seconds` of R's requests (49 new orders a page)."""
    found = []
    for rate in session.plan.rate_limits:
        orders = int(rate * session.plan.rate_seconds * 49)
        print(f"store of {orders} orders at --rate-limit {rate:g}", flush=True)
        with Emulator(orders, rate_limit=rate) as emu:
            measurement, out = session.measure(emu, OURS, 0, tag=f"rate-{rate:g}")
            shutil.rmtree(out)
        found.append(rate_figures(rate, measurement))
        print(
            f"  {found[-1]['accepted_per_s']:.1f} accepted requests/s "
            f"({found[-1]['share_of_limit']:.0%} of {rate:g}), {found[-1]['throttled']} 429s "
            f"({found[-1]['throttled_share']:.1%}), settled at {found[-1]['window']} in flight, "
            f"{found[-1]['pace']} requests/s",
            flush=True,
        )
    session.sections["rate_limited"] = found


def rate_figures(rate: float, m: Measurement) -> dict[str, Any]:
    throttled = int(m.extra.get("throttled") or 0)
    accepted = m.requests - throttled
    return {
        "rate_limit": rate,
        "orders_in_store": m.orders_in_store,
        "wall_s": m.wall_s,
        "requests": m.requests,
        "throttled": throttled,
        "accepted_per_s": accepted / m.wall_s,
        "share_of_limit": accepted / m.wall_s / rate,
        "throttled_share": throttled / max(1, m.requests),
        "window": m.extra.get("window"),
        "pace": m.extra.get("pace"),
        "orders_ok": m.orders == m.orders_in_store,
    }


# ---- a larger store: memory growth, analytics ----------------------------------------------


def big_store(session: Session) -> None:
    orders = session.plan.big_orders
    print(f"store of {orders} orders: memory growth and analytics", flush=True)
    with Emulator(orders) as emu:
        lake: Path | None = None
        for rep in range(session.plan.big_reps):
            for name in rotation(FAST, rep):
                if name != OURS and rep > 0:
                    continue
                _, out = session.measure(emu, name, rep, tag="big")
                if name == OURS and lake is None:
                    lake = out
                else:
                    shutil.rmtree(out)
    assert lake is not None
    session.sections["analytics"] = time_analytics(lake, session.plan.analytics_runs)
    shutil.rmtree(lake)


def analytics_store(session: Session) -> None:
    """Only the analytics figures (`--analytics-only`): one sync of the big store, then the
    dbt models over it."""
    orders = session.plan.big_orders
    print(f"store of {orders} orders: analytics", flush=True)
    with Emulator(orders) as emu:
        _, lake = session.measure(emu, OURS, 0, tag="big")
    session.sections["analytics"] = time_analytics(lake, session.plan.analytics_runs)
    shutil.rmtree(lake)


def time_analytics(data_dir: Path, runs: int) -> dict[str, Any]:
    """`dbt build` of the models once, then the median time of each dashboard model's
    compiled SELECT (as dbt ran it) over the lake, after one warm-up run."""
    import duckdb

    from alter_pipeline.analytics import DBT_DATABASE, analytics_dir, build_models, compiled_models

    started = time.perf_counter()
    build_models(data_dir)
    build_s = time.perf_counter() - started
    print(f"  dbt build (models and tests) {build_s:6.1f} s", flush=True)
    queries: dict[str, float] = {}
    database = analytics_dir(data_dir) / DBT_DATABASE
    with duckdb.connect(str(database), read_only=True) as con:
        items = con.execute("SELECT count(*) FROM lake.order_items").fetchall()[0][0]
        # what the sync asset adds per sync: the content data version of the tables dbt reads
        started = time.perf_counter()
        for table in ("orders", "order_items", "products"):
            con.execute(f"SELECT count(*), sum(hash(t)::HUGEINT) FROM lake.{table} t").fetchall()
        version_ms = (time.perf_counter() - started) * 1000
        print(f"  content data versions        {version_ms:7.1f} ms", flush=True)
        for name, sql in compiled_models(data_dir).items():
            con.sql(sql).to_arrow_table()
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                con.sql(sql).to_arrow_table()
                times.append((time.perf_counter() - started) * 1000)
            queries[name] = statistics.median(times)
            print(f"  analytics {name:<20} {queries[name]:7.1f} ms over {items} items")
    return {
        "items": items,
        "runs": runs,
        "median_ms": queries,
        "dbt_build_s": round(build_s, 1),
        "data_versions_ms": round(version_ms, 1),
    }


# ---- a million orders (opt-in: --million) ---------------------------------------------------


def million(session: Session) -> None:
    """A full sync of `million_orders` (about 3M items) once, then an hour of shoppers and an
    incremental sync: time, peak RSS and requests, for the growth from the main store."""
    orders = session.plan.million_orders
    print(f"store of {orders} orders (the emulator renders them first)", flush=True)
    started = time.perf_counter()
    with Emulator(orders) as emu:
        print(f"  emulator ready in {time.perf_counter() - started:.0f} s", flush=True)
        full, lake = session.measure(emu, OURS, 0, tag="million")
        found: dict[str, Any] = {
            "orders_in_store": orders,
            "load_before": os.getloadavg(),
            "full": {
                "wall_s": full.wall_s,
                "cpu_s": full.cpu_s,
                "peak_rss_mb": full.peak_rss_mb,
                "requests": full.requests,
                "orders": full.orders,
                "items": full.items,
            },
        }
        found["incremental"] = incremental(session, emu, lake, tag="million")
        found["load_after"] = os.getloadavg()
    shutil.rmtree(lake)
    session.sections["million"] = found
