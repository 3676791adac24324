"""The emulator in a process of its own, with a control channel for scripted store changes.

    python -m benchmarks.syncbench.emulator_proc --orders 100000 --seed 7 --latency-ms 30

Serves the same app as `python -m alter_pipeline.emulator` (`start_emulator`, uvicorn with
httptools on loopback), renders every order's JSON once before announcing itself (so the first
contender does not pay for it), then prints one JSON line: base_url, root_url, key, token,
orders. It then answers one JSON command a line on stdin with one JSON line on stdout:

- `{"cmd": "mutate", "fraction": 0.01, "seconds": 3600}`: simulated shoppers (the emulator's
  live mode, `Shoppers`) act on recent orders, creating carts, editing quantities and checking
  out, until `fraction` of the store's orders were touched; their clock advances `seconds` over
  the run. Answers the actions, the store's clock and the expected state of every touched
  order (status and item quantities, or deleted).
- `{"cmd": "quit"}`.

Request counts are read over HTTP from `GET /__emulator/stats` like any other client would.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alter_pipeline.emulator import EmulatorConfig, RunningEmulator, start_emulator
from alter_pipeline.emulator.config import REFERENCE_NOW
from alter_pipeline.emulator.live import Shoppers
from alter_pipeline.emulator.store import Store

PRODUCTS = 24


@dataclass
class SimClock:
    """The store's clock: the reference 'now' plus simulated time, advanced by `mutate`."""

    start: datetime = REFERENCE_NOW
    offset: timedelta = field(default_factory=timedelta)

    def now(self) -> datetime:
        return self.start + self.offset


def record_touches(store: Store, touched: set[int]) -> None:
    """Note the id of every order the store's mutation methods change."""

    def wrap(name: str, order_id: Callable[[tuple[Any, ...], Any], int]) -> None:
        method = getattr(store, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            touched.add(order_id(args, result))
            return result

        setattr(store, name, recorded)

    wrap("create_order", lambda _args, result: result["id"])
    for name in ("set_status", "set_quantities", "delete_order"):
        wrap(name, lambda args, _result: args[0])


def expected_state(store: Store, order_id: int) -> dict[str, Any]:
    if store.status_of(order_id) is None:
        return {"id": order_id, "deleted": True}
    order = store.get_order(order_id)
    items = sorted((item["id"], item["quantity"]) for item in order["productItems"])
    return {"id": order_id, "status": order["orderStatus"], "items": items}


def mutate(
    store: Store, clock: SimClock, fraction: float, seconds: float, seed: int
) -> dict[str, Any]:
    target = max(1, round(store.order_count() * fraction))
    shoppers = Shoppers(store, rate=1.0, seed=seed)
    touched: set[int] = set()
    record_touches(store, touched)
    # About 1.4 actions per touched order (some act twice on one order): spread them evenly.
    step = timedelta(seconds=seconds / (target * 1.4))
    start = clock.offset
    while len(touched) < target:
        clock.offset += step
        shoppers.step()
    clock.offset = start + timedelta(seconds=seconds)
    return {
        "actions": dict(Counter(shoppers.actions)),
        "now": clock.now().isoformat(),
        "touched": [expected_state(store, order_id) for order_id in sorted(touched)],
    }


def serve_commands(emulator: RunningEmulator, clock: SimClock, seed: int) -> None:
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "quit":
            return
        if command["cmd"] == "mutate":
            reply = mutate(emulator.store, clock, command["fraction"], command["seconds"], seed)
        else:
            reply = {"error": f"unknown command {command['cmd']!r}"}
        print(json.dumps(reply), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--rate-limit", type=float, help="requests per second (429 beyond)")
    args = parser.parse_args()
    clock = SimClock()
    config = EmulatorConfig(
        orders=args.orders,
        products=PRODUCTS,
        seed=args.seed,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        clock=clock.now,
    )
    emulator = start_emulator(config)
    try:
        emulator.store.warm()
        hello = {
            "base_url": emulator.base_url,
            "root_url": emulator.root_url,
            "key": emulator.key,
            "token": emulator.token,
            "orders": emulator.store.order_count(),
            "now": clock.now().isoformat(),
        }
        print(json.dumps(hello), flush=True)
        serve_commands(emulator, clock, args.seed)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
