"""Inbound figures: requests per second the inbound server verifies and stores, and the time
from an accepted event to its PATCH with the sensor at its interval.

    .venv/bin/python benchmarks/inbound_throughput.py [--requests 5000] [--concurrency 8]
                                                      [--events 4] [--interval 15]

1. Throughput: `alter-pipeline inbound serve` runs in a subprocess (its own GIL), with one
   Stripe source over a fresh inbox; an asyncio client sends `--requests` distinct,
   correctly signed Stripe-style events over `--concurrency` keep-alive connections. Every
   2xx is verified and committed to the SQLite inbox (WAL, synchronous=FULL, group commit)
   before it is sent; the inbox is counted afterwards to prove it.
2. Latency: the emulator and a synced lake; `--events` events for `processing` orders are
   accepted at random moments while a stand-in for the Dagster daemon evaluates
   `inbound_events_sensor` every `--interval` seconds (the sensor's minimum interval) and runs
   each requested `apply_rules_job` in process. Reported: accepted -> PATCH (the audit row's
   time, written right after the PATCH), split into the wait for the next tick and the run.
   A real daemon also launches each run in a new process (seconds, Dagster's code loading),
   which this does not include.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from alter_pipeline.inbound.inbox import Inbox
from alter_pipeline.inbound.verify import stripe_signature_header

SECRET = "whsec_bench_inbound_secret_0123456789abcdef"
INBOUND = "sources:\n  - {id: stripe, path: /hooks/stripe, kind: stripe, secret_env: BENCH_S}\n"
RULES = """
rules:
  - id: paid-on-checkout
    on: {source: stripe, type: checkout.session.completed}
    order_id: data.object.metadata.alter_order_id
    when: {status: {in: [processing]}}
    then: {set_status: paid}
"""


def event(n: int, order_id: int) -> bytes:
    body = {
        "id": f"evt_bench_{n:08d}",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {"object": {"metadata": {"alter_order_id": str(order_id)}}},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- 1. throughput ------------------------------------------------------------------------


async def send_all(url: str, requests: int, concurrency: int) -> tuple[float, int]:
    stamp = int(time.time())
    bodies = [event(n, 1000 + n) for n in range(requests)]
    headers = [{"Stripe-Signature": stripe_signature_header(SECRET, b, stamp)} for b in bodies]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)
    accepted = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal accepted
            while not queue.empty():
                n = queue.get_nowait()
                answer = await client.post(url, content=bodies[n], headers=headers[n])
                accepted += answer.status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, accepted


def throughput(root: Path, requests: int, concurrency: int) -> None:
    (root / "inbound.yaml").write_text(INBOUND)
    port = free_port()
    env = {
        **os.environ,
        "BENCH_S": SECRET,
        "ALTER_DATA_DIR": str(root / "data"),
        "ALTER_INBOUND_FILE": str(root / "inbound.yaml"),
        "ALTER_STOREFRONTS_FILE": str(root / "none.yaml"),
    }
    command = [str(Path(sys.executable).parent / "alter-pipeline"), "inbound", "serve", "--quiet"]
    server = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, cwd=root
    )
    url = f"http://127.0.0.1:{port}/hooks/stripe"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the inbound server did not start") from None
                time.sleep(0.1)
        asyncio.run(send_all(url, min(200, requests), concurrency))  # warm up, not counted
        cpu_before = cpu_seconds(server.pid)
        seconds, accepted = asyncio.run(send_all(url, requests, concurrency))
        server_cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=30)
    with Inbox.for_root(root / "data") as inbox:
        stored = inbox.stats().get("stripe", {}).get("stored", 0)
    print(
        f"inbound server: {accepted / seconds:,.0f} requests/s verified and stored "
        f"({accepted} of {requests} accepted in {seconds:.2f} s, {concurrency} connections; "
        f"inbox holds {stored} events); the server spent {server_cpu / max(accepted, 1) * 1000:.2f}"
        f" ms of CPU per request, i.e. {accepted / server_cpu if server_cpu else 0:,.0f} "
        "requests/s per core it has to itself (the client shares the machine)"
    )


# ---- 2. latency -------------------------------------------------------------------------------


def latency(root: Path, events: int, interval: float) -> None:
    import dagster as dg
    import duckdb

    from alter_pipeline.api import AlterClient
    from alter_pipeline.assets.rules import build_status_transitions
    from alter_pipeline.emulator import EmulatorConfig, run_emulator
    from alter_pipeline.inbound.config import parse_inbound
    from alter_pipeline.inbound.server import InboundApp, run_inbound_server
    from alter_pipeline.jobs import apply_rules_job
    from alter_pipeline.lake import Lake
    from alter_pipeline.resources import AlterApiResource, LakeResource
    from alter_pipeline.sensors import build_inbound_sensor
    from alter_pipeline.sync import run_sync

    data = root / "latency"
    rules = root / "rules.yaml"
    rules.write_text(RULES)
    config = EmulatorConfig(orders=300, products=12, seed=7, now=datetime.now(UTC))
    with run_emulator(config) as emulator:
        carts = emulator.store.order_ids(["shopping_cart"])[:events]
        for order_id in carts:
            emulator.store.set_status(order_id, "processing")
        with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
            run_sync(client, Lake(data))
        defs = dg.Definitions(
            assets=[build_status_transitions()],
            jobs=[apply_rules_job],
            resources={
                "alter_api": AlterApiResource(
                    base_url=emulator.base_url, api_key=emulator.key, api_token=emulator.token
                ),
                "lake": LakeResource(data_dir=str(data)),
            },
        )
        job = defs.resolve_job_def("apply_rules_job")
        sensor = build_inbound_sensor(rules_file=str(rules))
        instance = dg.DagsterInstance.ephemeral()
        stop = threading.Event()
        ticks: list[float] = []
        runs: list[float] = []

        def daemon() -> None:  # what the Dagster daemon does, at the sensor's interval
            cursor = None
            while not stop.wait(interval):
                ticks.append(time.time())
                context = dg.build_sensor_context(
                    cursor=cursor,
                    instance=instance,
                    resources={"lake": LakeResource(data_dir=str(data))},
                )
                result = sensor.evaluate_tick(context)
                cursor = result.cursor or cursor
                for request in result.run_requests:
                    started = time.perf_counter()
                    job.execute_in_process(run_config=request.run_config, instance=instance)
                    runs.append(time.perf_counter() - started)

        app = InboundApp(
            parse_inbound(INBOUND), {"stripe": Inbox.for_root(data)}, secrets={"stripe": (SECRET,)}
        )
        accepted: dict[int, float] = {}
        thread = threading.Thread(target=daemon, daemon=True)
        thread.start()
        rng = random.Random(7)
        with run_inbound_server(app) as server, httpx.Client(timeout=10) as http:
            for n, order_id in enumerate(carts):
                time.sleep(rng.uniform(0.3, interval))
                body = event(n, order_id)
                header = stripe_signature_header(SECRET, body, int(time.time()))
                answer = http.post(
                    f"{server.url}/hooks/stripe", content=body, headers={"Stripe-Signature": header}
                )
                assert answer.status_code == 200, answer.text
                accepted[order_id] = time.time()
            deadline = time.monotonic() + 2 * interval + 60
            while len(carts) > len(set(carts) & set(emulator.store.order_ids(["paid"]))):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        stop.set()
        thread.join(timeout=interval + 60)
    snapshot = Lake(data).current()
    assert snapshot is not None
    files = (snapshot.table_dir("status_transitions") / "**" / "*.parquet").as_posix()
    with duckdb.connect() as con:
        rows = con.execute(
            'SELECT order_id, epoch("at") FROM read_parquet($files, hive_partitioning = true) '
            "WHERE outcome = 'applied'",
            {"files": files},
        ).fetchall()
    patched = dict(rows)
    delays = [patched[o] - accepted[o] for o in carts if o in patched]
    waits = [min(t for t in ticks if t >= accepted[o]) - accepted[o] for o in carts if o in patched]
    print(
        f"accepted -> PATCH with the sensor every {interval:g} s: mean "
        f"{statistics.mean(delays):.2f} s, max {max(delays):.2f} s over {len(delays)} of "
        f"{len(carts)} events "
        f"(waiting for the next tick: mean {statistics.mean(waits):.2f} s; the run itself: mean "
        f"{statistics.mean(runs):.2f} s, in process)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--events", type=int, default=4)
    parser.add_argument("--interval", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inbound-bench-") as tmp:
        root = Path(tmp)
        throughput(root, args.requests, args.concurrency)
        latency(root, args.events, args.interval)


if __name__ == "__main__":
    main()
