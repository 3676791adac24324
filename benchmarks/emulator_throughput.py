"""Emulator figures: time to generate a large store, and pages per second served.

    .venv/bin/python benchmarks/emulator_throughput.py [--orders 100000] [--concurrency 8]

1. Generation: builds a `Store` of `--orders` orders in this process and times it.
2. Serving: starts `python -m alter_pipeline.emulator` in a subprocess (its own interpreter,
   so client and server do not share a GIL), then pages through every order with raw httpx
   clients: `limit=50`, ascending id, `--concurrency` requests in flight, latency 0. Two
   clients: one `httpx.AsyncClient` with that many tasks, and that many threads each with
   an `httpx.Client`. The first pass renders each order's JSON (cold); later passes serve
   the cached bytes (warm). The server's own CPU time per page (from /proc, on Linux) shows
   how much of the wall time is the emulator's: the rest is the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from alter_pipeline.emulator import EmulatorConfig, Store
from alter_pipeline.emulator.config import DEMO_KEY, DEMO_TOKEN

PAGE = 50
ROOT = Path(__file__).resolve().parent.parent
HEADERS = {"x-alter-access-key": DEMO_KEY, "x-alter-access-token": DEMO_TOKEN}
ORDER_MARK = b'"customizerOrderURL"'  # once per order in a list page


def time_generation(orders: int) -> float:
    started = time.perf_counter()
    store = Store(EmulatorConfig(orders=orders, products=24))
    elapsed = time.perf_counter() - started
    assert store.order_count() == orders
    return elapsed


def start_server(orders: int) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "alter_pipeline.emulator", "--port", "0", "--orders", str(orders),
        "--products", "24", "--key", DEMO_KEY, "--token", DEMO_TOKEN,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    for line in server.stdout:
        found = re.search(r"listening on (\S+)", line)
        if found:
            return server, found.group(1)
    raise RuntimeError("the emulator exited before listening")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _params(offset: int) -> dict[str, str | int]:
    return {"order_by": "id", "direction": "ASC", "limit": PAGE, "offset": offset}


def async_pass(base_url: str, total: int, concurrency: int) -> int:
    """Every page once through one AsyncClient and `concurrency` tasks; orders seen."""
    offsets = iter(range(0, total, PAGE))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def run() -> int:
        seen = 0

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal seen
            for offset in offsets:
                answer = await client.get("/customer-orders", params=_params(offset))
                answer.raise_for_status()
                seen += answer.content.count(ORDER_MARK)

        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, limits=limits) as c:
            await asyncio.gather(*(worker(c) for _ in range(concurrency)))
        return seen

    return asyncio.run(run())


def threaded_pass(base_url: str, total: int, concurrency: int) -> int:
    """Every page once through `concurrency` threads, each with its own Client."""
    local = threading.local()
    clients: list[httpx.Client] = []

    def fetch(offset: int) -> int:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, headers=HEADERS)
            clients.append(local.client)
        answer = local.client.get("/customer-orders", params=_params(offset))
        answer.raise_for_status()
        return answer.content.count(ORDER_MARK)

    with ThreadPoolExecutor(concurrency) as pool:
        seen = sum(pool.map(fetch, range(0, total, PAGE)))
    for client in clients:
        client.close()
    return seen


def measure(label: str, run: Callable[[], int], server_pid: int, orders: int, pages: int) -> None:
    cpu_before = cpu_seconds(server_pid)
    started = time.perf_counter()
    seen = run()
    seconds = time.perf_counter() - started
    cpu_after = cpu_seconds(server_pid)
    assert seen == orders, f"saw {seen} orders, expected {orders}"
    server_share = ""
    if cpu_before is not None and cpu_after is not None:
        per_page_ms = (cpu_after - cpu_before) / pages * 1000
        capacity = 1000 / per_page_ms if per_page_ms else float("inf")
        server_share = f"; server CPU {per_page_ms:.2f} ms/page (~{capacity:,.0f} pages/s)"
    print(
        f"  {label:<34} {seconds:6.2f} s  {pages / seconds:6,.0f} pages/s  "
        f"{seen / seconds:7,.0f} orders/s{server_share}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    n, concurrency = args.orders, args.concurrency

    print(f"generate {n:,} orders: {time_generation(n):.2f} s", flush=True)

    server, base_url = start_server(n)
    pages = -(-n // PAGE)
    print(f"serve {pages:,} pages of {PAGE} orders, {concurrency} in flight, latency 0:")
    try:
        passes = [
            ("AsyncClient, cold (first render)", async_pass),
            ("AsyncClient, warm (cached bytes)", async_pass),
            ("8 threads x Client, warm", threaded_pass),
        ]
        for label, run in passes:
            label = label.replace("8 threads", f"{concurrency} threads")
            measure(label, lambda r=run: r(base_url, n, concurrency), server.pid, n, pages)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
