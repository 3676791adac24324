"""Rules figures: evaluation time over a large synthetic lake, and transitions per second.

    .venv/bin/python benchmarks/rules_eval.py [--items 1000000] [--rate-limit 20]
                                              [--transitions 200] [--concurrency 4]

1. Evaluation: writes a lake snapshot of ~`--items` order items (about 3 per order, built
   directly as Arrow columns, not through the API) and times `find_matches` of 20 rules over
   it: one DuckDB query per rule, the way `apply_rules_job` evaluates them. Reports the total,
   the slowest rule and the matches.
2. Applying: starts the emulator with `--rate-limit` requests per second, syncs its orders into
   a lake, and times `apply_rules` of one rule matching `--transitions` orders: claims, batch
   re-reads, PATCHes (`--concurrency` in flight, the client retrying 429 after Retry-After)
   and the audit write. Reports transitions applied per second.
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa

from alter_pipeline.lake import Lake, schemas
from alter_pipeline.rules import parse_rules
from alter_pipeline.rules.compile import find_matches
from alter_pipeline.rules.data import snapshot_connection
from alter_pipeline.sync import refresh_orders

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STATUSES = np.array(["shopping_cart", "editable", "processing", "paid", "completed", "cancelled"])
MATERIALS = np.array(["Cotton", "Organic cotton", "Ceramic", "Silicone", "Stainless steel"])
PRINTS = np.array(["DTG", "Sublimation", "UV print", "Embroidery"])
SIZES = np.array(["S", "M", "L", "XL", "450ml (15oz)", "iPhone 15"])
COLORS = np.array(["Default", "Black", "White", "Navy"])
DESIGNS = np.array(["Team Kraków", "Gift for Mum", "Urodziny Małgosi", "Summer Camp", "Logo"])

RULES = """\
max_transitions_per_run: 100000000
transitions: {completed: [processing], cancelled: [processing], paid: [processing, completed, cancelled]}
rules:
  - {id: r01, when: {status: {in: [shopping_cart, editable]}, age: {gt: 30d}}, then: {set_status: cancelled}}
  - {id: r02, when: {status: shopping_cart, idle: {gt: 60d}}, then: {set_status: cancelled}}
  - {id: r03, when: {status: editable, any_item: {material_name_en: {eq: Cotton}}}, then: {set_status: cancelled}}
  - {id: r04, when: {status: editable, all_items: {stock_quantity: {gte: 1}}}, then: {set_status: processing}}
  - {id: r05, when: {status: paid, total_value: {gt: 500}, total_currency: EUR}, then: {set_status: completed}}
  - {id: r06, when: {status: paid, idle: {gt: 14d}}, then: {set_status: completed}}
  - {id: r07, when: {design_name: {matches: "(?i)^team"}, status: editable}, then: {set_status: processing}}
  - {id: r08, when: {design_name: {contains: Mum}}, then: {set_status: processing}}
  - {id: r09, when: {any_item: {print_type_name_en: {eq: Embroidery}, quantity: {gte: 20}}, status: processing}, then: {set_status: paid}}
  - {id: r10, when: {item_count: {gte: 5}, status: shopping_cart}, then: {set_status: editable}}
  - {id: r11, when: {total_quantity: {gt: 50}, status: {ne: cancelled}}, then: {set_status: processing}}
  - {id: r12, when: {not: {any_item: {material_name_en: {in: [Cotton, Organic cotton]}}}, status: editable}, then: {set_status: cancelled}}
  - {id: r13, when: {any: [{status: shopping_cart}, {status: editable}], age: {lt: 1d}}, then: {set_status: processing}}
  - {id: r14, when: {is_seen_by_owner: false, status: processing, age: {gt: 7d}}, then: {set_status: paid}}
  - {id: r15, when: {all_items: {size_name_en: {in: [S, M, L, XL]}}, status: editable}, then: {set_status: shopping_cart}}
  - {id: r16, when: {any_item: {color_name_en: {ne: Default}, stock_quantity: {lt: 5}}, status: paid}, then: {set_status: cancelled}}
  - {id: r17, when: {created_at: {lt: 2026-01-01}, status: {not_in: [completed, cancelled]}}, then: {set_status: cancelled}}
  - {id: r18, when: {total_value: {lte: 10}, status: shopping_cart, idle: {gt: 2d}}, then: {set_status: cancelled}}
  - {id: r19, when: {any_item: {unit_price_value: {gt: 40}}, all_items: {quantity: {lte: 2}}, status: editable}, then: {set_status: processing}}
  - {id: r20, when: {product_group_name_en: {matches: "^Mug"}, status: shopping_cart, age: {gt: 90d}}, then: {set_status: cancelled}}
"""  # noqa: E501


def _strings(rng: np.random.Generator, values: np.ndarray, n: int) -> pa.Array:
    return pa.array(values[rng.integers(0, len(values), n)])


def synthetic_snapshot(lake: Lake, items_wanted: int, seed: int = 7) -> tuple[int, int]:
    """Orders and items with realistic spreads, written as one snapshot. (orders, items)."""
    rng = np.random.default_rng(seed)
    per_order = rng.choice([1, 2, 3, 4, 5, 6, 7, 8], p=[.3, .22, .16, .11, .08, .06, .04, .03],
                           size=items_wanted // 2)  # fmt: skip
    cumulative = np.cumsum(per_order)
    orders = int(np.searchsorted(cumulative, items_wanted)) + 1
    per_order = per_order[:orders]
    items = int(per_order.sum())
    order_ids = np.arange(1, orders + 1, dtype=np.int64)
    created = NOW - timedelta(days=365)
    created_us = rng.integers(0, 365 * 86_400 * 10**6, orders)
    quantities = rng.choice([1, 2, 3, 5, 10, 20, 50], size=items)
    unit_cents = rng.integers(100, 6_000, items)
    item_order = np.repeat(order_ids, per_order)
    start = np.repeat(created_us, per_order)
    updated_us = start + rng.integers(0, 30 * 86_400 * 10**6, items)
    totals = np.bincount(item_order - 1, weights=unit_cents * quantities, minlength=orders)
    ts = pa.timestamp("us", tz="UTC")
    epoch = int(created.timestamp() * 10**6)
    order_cols = {
        "order_id": pa.array(order_ids),
        "status": _strings(rng, STATUSES, orders),
        "is_seen_by_owner": pa.array(rng.random(orders) < 0.5),
        "created_at": pa.array(epoch + created_us, ts),
        "design_name": _strings(rng, DESIGNS, orders),
        "product_group_name_en": _strings(rng, np.array(["Mug 450ml", "T-shirt", "Case"]), orders),
        "total_value": _money(totals.astype(np.int64)),
        "total_currency": pa.array(np.where(rng.random(orders) < 0.8, "EUR", "PLN")),
        "item_count": pa.array(per_order.astype(np.int32)),
        "total_quantity": pa.array(np.bincount(item_order - 1, weights=quantities).astype(int)),
    }
    item_cols = {
        "order_item_id": pa.array(np.arange(1, items + 1, dtype=np.int64)),
        "order_id": pa.array(item_order),
        "material_name_en": _strings(rng, MATERIALS, items),
        "print_type_name_en": _strings(rng, PRINTS, items),
        "size_name_en": _strings(rng, SIZES, items),
        "color_name_en": _strings(rng, COLORS, items),
        "stock_quantity": pa.array(rng.integers(0, 300, items)),
        "unit_price_value": _money(unit_cents),
        "quantity": pa.array(quantities.astype(np.int64)),
        "updated_at": pa.array(epoch + updated_us, ts),
    }
    with lake.write() as writer:
        writer.write_table("orders", _with_schema(order_cols, schemas.ORDERS))
        writer.write_table("order_items", _with_schema(item_cols, schemas.ORDER_ITEMS))
    return orders, items


def _money(cents: np.ndarray) -> pa.Array:
    return pa.array([Decimal(int(c)).scaleb(-2) for c in cents], schemas.MONEY)


def _with_schema(columns: dict[str, pa.Array], schema: pa.Schema) -> pa.Table:
    length = len(next(iter(columns.values())))
    arrays = [
        columns[f.name].cast(f.type) if f.name in columns else pa.nulls(length, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def bench_evaluation(items_wanted: int) -> None:
    ruleset = parse_rules(RULES)
    with tempfile.TemporaryDirectory() as folder:
        lake = Lake(Path(folder))
        started = time.perf_counter()
        orders, items = synthetic_snapshot(lake, items_wanted)
        built = time.perf_counter() - started
        with snapshot_connection(lake.current()) as con:
            find_matches(con, ruleset.enabled[:1], NOW)  # warm the Parquet metadata cache
            timings = {}
            matched = {}
            started = time.perf_counter()
            for rule in ruleset.enabled:
                clock = time.perf_counter()
                matched[rule.id] = len(find_matches(con, [rule], NOW)[rule.id])
                timings[rule.id] = time.perf_counter() - clock
            total = time.perf_counter() - started
    slowest = max(timings, key=timings.get)
    print(f"evaluation: {orders:,} orders, {items:,} items (lake written in {built:.1f} s)")
    print(f"  20 rules in {total:.2f} s ({total / 20 * 1000:.0f} ms a rule on average); "
          f"slowest {slowest} {timings[slowest] * 1000:.0f} ms")  # fmt: skip
    per_rule = ", ".join(f"{k}={v}" for k, v in matched.items())
    print(f"  matches: {sum(matched.values()):,} ({per_rule})")


def bench_apply(rate_limit: float | None, transitions: int, concurrency: int) -> None:
    from alter_pipeline.api import AlterClient
    from alter_pipeline.emulator import EmulatorConfig, run_emulator
    from alter_pipeline.lake.flatten import flatten_orders
    from alter_pipeline.rules.apply import apply_rules

    config = EmulatorConfig(orders=max(2000, transitions * 8), seed=7, rate_limit=rate_limit)
    with run_emulator(config) as emulator, tempfile.TemporaryDirectory() as folder:
        lake = Lake(Path(folder))
        raws = emulator.store.orders_list()
        flat = flatten_orders(raws)
        with lake.write() as writer:
            writer.write_table("orders", pa.Table.from_batches([flat.orders]))
            writer.write_table("order_items", pa.Table.from_batches([flat.items]))
        targets = [r["id"] for r in raws if r["orderStatus"] == "completed"][:transitions]
        text = textwrap.dedent(f"""\
            max_transitions_per_run: {transitions}
            transitions: {{completed: [processing]}}
            rules:
              - id: reopen
                when: {{status: completed, order_id: {{in: {targets}}}}}
                then: {{set_status: processing}}
            """)
        with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
            started = time.perf_counter()
            report = apply_rules(client, lake, parse_rules(text), run_id="bench",
                                 concurrency=concurrency, now=emulator.store.now(),
                                 refresh=refresh_orders)  # fmt: skip
            elapsed = time.perf_counter() - started
            retries = client.stats.snapshot().retries
        counts = emulator.counters
        limited = counts.count(status=429)
    applied = len(report.applied)
    label = f"{rate_limit:g} requests/s" if rate_limit else "no rate limit"
    failed = len(report.failed)
    print(f"applying ({label}, {concurrency} PATCHes in flight): {applied} transitions in "
          f"{elapsed:.2f} s = {applied / elapsed:.1f} transitions/s "
          f"({limited} answers 429, {retries} client retries, {failed} failed)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--rate-limit", type=float, default=20.0)
    parser.add_argument("--transitions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    bench_evaluation(args.items)
    bench_apply(args.rate_limit, args.transitions, args.concurrency)
    bench_apply(None, args.transitions, args.concurrency)


if __name__ == "__main__":
    main()
