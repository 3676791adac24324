"""API client figures: orders per second through `AlterClient.iter_order_pages`.

    .venv/bin/python benchmarks/client_throughput.py [--orders 5000] [--latency-ms 30]
                                                    [--concurrency 1 8]

Starts the emulator in this process (`run_emulator`, its own thread) with `--orders` orders and
`--latency-ms` added to every response, reads every order once untimed (so the emulator's
per-order JSON cache is warm for all runs), then for each concurrency times one full verified
listing: pages of 50 overlapping by one row (step 49), ascending id, plus the final `total`
re-read. Also times the typed `iter_orders` at the highest concurrency (parsing cost).

Client and emulator share one interpreter (and its GIL), so the figures at high concurrency
are a lower bound of what the client does against a real server.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from alter_pipeline.api import AlterClient, Timeouts
from alter_pipeline.emulator import EmulatorConfig, RunningEmulator, run_emulator


def timed(run: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = run()
    return count, time.perf_counter() - started


def raw_listing(client: AlterClient, concurrency: int) -> int:
    return sum(len(page.items) for page in client.iter_order_pages(concurrency=concurrency))


def typed_listing(client: AlterClient, concurrency: int) -> int:
    return sum(1 for _ in client.iter_orders(concurrency=concurrency))


def measure(emu: RunningEmulator, label: str, concurrency: int, typed: bool = False) -> None:
    listing = typed_listing if typed else raw_listing
    with AlterClient(emu.base_url, emu.key, emu.token, timeouts=Timeouts(read=60)) as client:
        orders, seconds = timed(lambda: listing(client, concurrency))
        stats = client.stats.snapshot()
    assert orders == emu.store.order_count(), (orders, emu.store.order_count())
    print(
        f"{label:<7} concurrency {concurrency:>2}: {orders:>6} orders in {seconds:6.2f} s = "
        f"{orders / seconds:8.0f} orders/s  ({stats.requests} requests, {stats.retries} retries, "
        f"{stats.bytes / 1e6:.1f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()

    config = EmulatorConfig(orders=args.orders, latency_ms=args.latency_ms, seed=7)
    with run_emulator(config) as emu:
        print(f"emulator: {args.orders} orders, latency {args.latency_ms:g} ms, in-process")
        with AlterClient(emu.base_url, emu.key, emu.token) as warmup:
            raw_listing(warmup, max(args.concurrency))  # render every order's JSON once
        for concurrency in args.concurrency:
            measure(emu, "raw", concurrency)
        measure(emu, "typed", max(args.concurrency), typed=True)


if __name__ == "__main__":
    main()
