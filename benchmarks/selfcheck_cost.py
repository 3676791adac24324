"""What the sync's self-check costs: requests to find d deletions and s status changes among
N orders (against a full listing's), and a live-traffic scenario's time.

    .venv/bin/python benchmarks/selfcheck_cost.py [--orders 100000] [--live-orders 10000]

Part 1: one full sync of `--orders` orders, then for each scenario the store changes where no
re-read of the incremental policy looks (final orders: d deleted, s completed orders cancelled,
as a refund wave would) and one incremental sync runs. Printed per scenario: the sync's requests
in all, the self-check's share (totals, locating, per-status totals), what it found, whether
the lake then equals the store, and the ratio to a full listing's requests.

Part 2: the emulator in live mode (25 actions a second) while full and incremental syncs run,
each timed, with what their self-checks found; then the shoppers pause and a reconcile must
find the lake exact.

Client and emulator share this interpreter (its GIL): request counts are exact, times are an
upper bound of what the client alone would take.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from alter_pipeline.api import AlterClient
from alter_pipeline.emulator import EmulatorConfig, run_emulator
from alter_pipeline.lake import Lake
from alter_pipeline.lake.flatten import flatten_orders
from alter_pipeline.selfcheck import listing_cost
from alter_pipeline.sync import SyncReport, run_sync

SCENARIOS = [(0, 0), (1, 0), (10, 0), (100, 0), (0, 1), (0, 10), (0, 100), (10, 10)]
FINAL = ["completed", "cancelled"]


def lake_matches_store(lake: Lake, store: Any) -> bool:
    snapshot = lake.current()
    assert snapshot is not None
    table = snapshot.read_table("orders").select(["order_id", "status"]).to_pylist()
    got = {row["order_id"]: row["status"] for row in table}
    expected = flatten_orders(store.orders_list()).orders.select(["order_id", "status"])
    return got == {row["order_id"]: row["status"] for row in expected.to_pylist()}


def change_final_orders(store: Any, rng: random.Random, deleted: int, moved: int) -> None:
    for order_id in rng.sample(store.order_ids(FINAL), deleted):
        store.delete_order(order_id)
    for order_id in rng.sample(store.order_ids(["completed"]), moved):
        store.set_status(order_id, "cancelled")


def synced(client: AlterClient, lake: Lake, **options: Any) -> tuple[SyncReport, int, float]:
    before = client.stats.snapshot().requests
    started = time.perf_counter()
    report = run_sync(client, lake, **options)
    return report, client.stats.snapshot().requests - before, time.perf_counter() - started


def cost_table(orders: int) -> None:
    config = EmulatorConfig(orders=orders, products=24, seed=7)
    with run_emulator(config) as emu, AlterClient(emu.base_url, emu.key, emu.token) as client:
        lake = Lake(Path(tempfile.mkdtemp(prefix="selfcheck-")))
        report, full_requests, seconds = synced(client, lake, full=True)
        print(f"full sync of {orders:,} orders: {full_requests} requests, {seconds:.1f} s")
        print(f"(a full listing of the orders alone: {listing_cost(orders) + 2} pages)\n")
        print(
            "| deleted d | cancelled s | requests | self-check | totals | locating | per-status "
            "| found deleted | found moved | lake exact | vs full sync |\n" + "|---" * 11 + "|"
        )
        rng = random.Random(1)
        for deleted, moved in SCENARIOS:
            change_final_orders(emu.store, rng, deleted, moved)
            report, requests, _ = synced(client, lake)
            check = report.check
            exact = lake_matches_store(lake, emu.store)
            print(
                f"| {deleted} | {moved} | {requests} | {check.requests} | {check.total_reads} | "
                f"{check.locate_reads} | {check.status_reads} | {check.deletions_found} | "
                f"{check.status_changes_found} | {'yes' if exact else 'NO'} | "
                f"{requests / full_requests:.1%} |"
            )


def live_scenario(orders: int, rate: float) -> None:
    config = EmulatorConfig(orders=orders, products=24, seed=5, live=True, live_rate=rate)
    print(f"\nlive traffic: {orders:,} orders, {rate:g} shopper actions a second")
    with run_emulator(config) as emu, AlterClient(emu.base_url, emu.key, emu.token) as client:
        lake = Lake(Path(tempfile.mkdtemp(prefix="selfcheck-live-")))
        started = time.perf_counter()
        for full in (True, False, False, True, False, False):
            report, requests, seconds = synced(client, lake, full=full)
            check = report.check
            print(
                f"  {report.mode:<11} {seconds:5.2f} s {requests:>5} requests  check: "
                f"{check.path:<8} ghosts {check.ghosts_dropped:>2}  deletions found "
                f"{check.deletions_found:>2}  moved {check.status_changes_found:>2}  "
                f"locating {check.locate_reads:>3} reads"
            )
        emu.pause_live()
        report, requests, seconds = synced(client, lake, full=True)
        elapsed = time.perf_counter() - started
        exact = lake_matches_store(lake, emu.store)
        actions = dict(emu.app.state.runtime.shoppers.actions)
        print(f"  paused, reconcile {seconds:.2f} s: lake exact: {'yes' if exact else 'NO'}")
        print(f"  scenario: {elapsed:.1f} s in all; shopper actions: {actions}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--live-orders", type=int, default=10_000)
    parser.add_argument("--live-rate", type=float, default=25.0)
    args = parser.parse_args()
    cost_table(args.orders)
    live_scenario(args.live_orders, args.live_rate)


if __name__ == "__main__":
    main()
