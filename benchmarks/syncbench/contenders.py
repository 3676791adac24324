"""The contenders, one per subprocess so that each one's memory and CPU are its own.

    python -m benchmarks.syncbench.contenders NAME --base-url URL --key K --token T --out DIR
                                              [--concurrency 8] [--now ISO]

Each prints one JSON line at the end: the orders and items it wrote (counted in the tables it
produced, not by the code that wrote them) and `work_s`, the wall time of the work itself
(imports and interpreter start-up excluded: `IMPORTS` are loaded before the clock starts; the
harness also times the whole process).

- `alter-pipeline`: `run_sync(full=True)` into a lake under DIR, then `ensure_views`: what
  `alter-pipeline sync --full` runs, without Dagster's start-up.
- `alter-pipeline-incremental`: `run_sync` over the lake a previous run left in DIR, at `--now`
  (the store's clock), then `ensure_views`.
- `dlt`: dlt's REST API source (offset paginator, limit 50, `order.items`, `order.total`) into
  DuckDB, with Parquet load files as dlt's DuckDB page recommends.
- `naive`: sequential httpx paging, `pandas.json_normalize`, `DataFrame.to_parquet`.
- `limit`: the requests `alter-pipeline` makes (the storefront check, the same pages, at the
  same concurrency, the self-check's read of the newest orders), with the bodies read and
  discarded: what no sync over this API can beat.
- `alter-pipeline-python`: the full sync with the Arrow fast path off (every page through the
  Python path it falls back to); not in the plan, for A/B runs of the fast path.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

KEY_HEADER = "x-alter-access-key"
TOKEN_HEADER = "x-alter-access-token"
PAGE = 50
ORDER_FIELDS = ["id", "orderStatus", "createdAt"]


def count_rows(sql_by_name: dict[str, str], database: str = ":memory:") -> dict[str, int]:
    import duckdb

    with duckdb.connect(database, read_only=database != ":memory:") as con:
        return {name: con.execute(sql).fetchall()[0][0] for name, sql in sql_by_name.items()}


# ---- alter-pipeline ------------------------------------------------------------------------


def run_ours(args: argparse.Namespace, *, full: bool) -> dict[str, Any]:
    from alter_pipeline.api import AlterClient, Timeouts
    from alter_pipeline.lake import Lake
    from alter_pipeline.sync import run_sync
    from alter_pipeline.warehouse import WAREHOUSE_FILE, ensure_views

    out = Path(args.out)
    now = datetime.fromisoformat(args.now) if args.now else None
    with AlterClient(args.base_url, args.key, args.token, timeouts=Timeouts(read=60)) as client:
        report = run_sync(client, Lake(out), full=full, concurrency=args.concurrency, now=now)
        stats = client.stats.snapshot()
    ensure_views(out)
    counts = count_rows(
        {"orders": "SELECT count(*) FROM orders", "items": "SELECT count(*) FROM order_items"},
        str(out / WAREHOUSE_FILE),
    )
    return counts | {
        "mode": report.mode,
        "reread": report.reread,
        "new_orders": report.new_orders,
        "deleted": report.deleted,
        # The adaptive concurrency (api/paging/concurrency.py): 429s, where it settled.
        "throttled": stats.throttled,
        "window": stats.window,
        "pace": stats.pace,
        # What an incremental sync's requests were spent on (the self-check's figures).
        "self_check": dataclasses.asdict(report.check),
        "product_pages": report.products.pages,
        "order_pages": report.orders.pages,  # an incremental sync: only if it escalated
        "escalated": report.escalated,
    }


# ---- dlt -----------------------------------------------------------------------------------


def dlt_config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "client": {
            "base_url": args.base_url.rstrip("/") + "/",
            "auth": {"type": "api_key", "name": KEY_HEADER, "api_key": args.key},
            "headers": {TOKEN_HEADER: args.token},
            "paginator": {"type": "offset", "limit": PAGE, "total_path": "order.total"},
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": "replace"},
        "resources": [
            {
                "name": "orders",
                "endpoint": {
                    "path": "customer-orders",
                    "data_selector": "order.items",
                    # A stable order, so that offsets mean the same rows on every page.
                    "params": {"order_by": "id", "direction": "ASC"},
                },
            }
        ],
    }


def run_dlt(args: argparse.Namespace) -> dict[str, Any]:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    out = Path(args.out)
    database = out / "dlt.duckdb"
    pipeline = dlt.pipeline(
        pipeline_name="alter_bench",
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="alter",
        pipelines_dir=str(out / "pipelines"),
    )
    pipeline.run(rest_api_source(dlt_config(args)), loader_file_format="parquet")
    return count_rows(
        {
            "orders": "SELECT count(*) FROM alter.orders",
            "items": "SELECT count(*) FROM alter.orders__product_items",
        },
        str(database),
    )


# ---- naive ---------------------------------------------------------------------------------


def fetch_sequentially(args: argparse.Namespace) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    headers = {KEY_HEADER: args.key, TOKEN_HEADER: args.token}
    with httpx.Client(base_url=args.base_url, headers=headers, timeout=60) as client:
        offset, total = 0, 1
        while offset < total:
            params = {"offset": offset, "limit": PAGE, "order_by": "id", "direction": "ASC"}
            body = client.get("/customer-orders", params=params).raise_for_status().json()
            orders.extend(body["order"]["items"])
            total, offset = body["order"]["total"], offset + PAGE
    return orders


def run_naive(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    out = Path(args.out)
    orders = fetch_sequentially(args)
    items = pd.json_normalize(
        orders, record_path="productItems", meta=ORDER_FIELDS, meta_prefix="order_", sep="_"
    )
    heads = pd.json_normalize([{k: v for k, v in o.items() if k != "productItems"} for o in orders])
    heads.to_parquet(out / "orders.parquet")
    items.to_parquet(out / "order_items.parquet")
    return count_rows(
        {
            "orders": f"SELECT count(*) FROM '{out / 'orders.parquet'}'",
            "items": f"SELECT count(*) FROM '{out / 'order_items.parquet'}'",
        }
    )


# ---- the limit -----------------------------------------------------------------------------


BY_ID = {"order_by": "id", "direction": "ASC"}


async def fetch_listing(http: httpx.AsyncClient, path: str, envelope: str, concurrency: int) -> int:
    """The requests alter-pipeline's pager makes for one listing: the first page (parsed for
    `total`), pages of 50 overlapping by one row, the final `total` check. Bodies after the
    first are read and discarded. Returns the number of requests."""
    first = await http.get(path, params={"offset": 0, "limit": PAGE, **BY_ID})
    total = first.raise_for_status().json()[envelope]["total"]
    offsets = iter(range(PAGE - 1, total, PAGE - 1))

    async def worker() -> int:
        done = 0
        for offset in offsets:
            response = await http.get(path, params={"offset": offset, "limit": PAGE, **BY_ID})
            await response.aread()  # read, never parsed
            done += 1
        return done

    done = await asyncio.gather(*(worker() for _ in range(concurrency)))
    await http.get(path, params={"offset": 0, "limit": 1, **BY_ID})
    return 2 + sum(done)


async def fetch_discarding(args: argparse.Namespace) -> int:
    limits = httpx.Limits(max_connections=args.concurrency)
    headers = {KEY_HEADER: args.key, TOKEN_HEADER: args.token}
    async with httpx.AsyncClient(
        base_url=args.base_url, headers=headers, limits=limits, timeout=60
    ) as http:
        # The sync's storefront check (GET /auth/check), then its two listings.
        (await http.get("/auth/check")).raise_for_status()
        orders = await fetch_listing(http, "/customer-orders", "order", args.concurrency)
        # The self-check's read of the newest end of the list (its `total`, after the listing).
        newest = {"offset": 0, "limit": PAGE, "order_by": "id", "direction": "DESC"}
        await (await http.get("/customer-orders", params=newest)).aread()
        products = await fetch_listing(http, "/products", "products", args.concurrency)
    return 2 + orders + products


def run_limit(args: argparse.Namespace) -> dict[str, Any]:
    return {"requests_made": asyncio.run(fetch_discarding(args))}


# ---- entry point ---------------------------------------------------------------------------


def run_ours_python(args: argparse.Namespace) -> dict[str, Any]:
    """The full sync with the Arrow fast path off: every page decoded as JSON and flattened
    in Python (what the fast path falls back to), to measure what the fast path gains."""
    from alter_pipeline.lake import fast_flatten

    fast_flatten.decode_orders_pages = lambda bodies, caches=None: [None] * len(bodies)
    return run_ours(args, full=True)


CONTENDERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "alter-pipeline": lambda args: run_ours(args, full=True),
    "alter-pipeline-python": run_ours_python,
    "alter-pipeline-incremental": lambda args: run_ours(args, full=False),
    "dlt": run_dlt,
    "naive": run_naive,
    "limit": run_limit,
}


# Modules each contender imports, loaded before its clock starts: `work_s` is the work itself.
# pandas too: pyarrow loads it on its first `pa.array` call, mid-work otherwise.
IMPORTS = {
    "alter-pipeline": (
        "pandas", "alter_pipeline.api", "alter_pipeline.lake", "alter_pipeline.lake.fast_flatten",
        "alter_pipeline.sync", "alter_pipeline.warehouse", "duckdb",
    ),
    "dlt": ("dlt", "dlt.sources.rest_api", "dlt.destinations", "duckdb", "pandas"),
    "naive": ("pandas", "pyarrow.parquet", "duckdb"),
    "limit": (),
}  # fmt: skip
IMPORTS["alter-pipeline-python"] = IMPORTS["alter-pipeline-incremental"] = IMPORTS["alter-pipeline"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(CONTENDERS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--now", help="the store's clock, for an incremental sync")
    args = parser.parse_args()
    for module in IMPORTS[args.name]:
        importlib.import_module(module)
    started = time.perf_counter()
    result = CONTENDERS[args.name](args)
    result["work_s"] = time.perf_counter() - started
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
