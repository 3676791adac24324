"""Webhook figures: deliveries per second from the outbox to a local receiver.

    .venv/bin/python benchmarks/webhook_throughput.py [--events 2000] [--orders 500]
                                                      [--concurrency 16] [--per-endpoint 8]

Writes `--events` events over `--orders` orders into a fresh lake snapshot, subscribes one
endpoint, and starts the verifying receiver (`alter_pipeline.webhooks.receiver.serve`) in a
subprocess, so sender and receiver do not share a GIL. Then times `ingest` (lake -> outbox)
and `deliver_due` (outbox -> signed HTTP POSTs over loopback, each answer recorded in SQLite
in its own transaction). Several events per order exercise the per-order ordering rule.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import yaml

from alter_pipeline.config import Settings
from alter_pipeline.events.schema import ORDER_EVENTS, ORDER_EVENTS_TABLE
from alter_pipeline.lake import Lake
from alter_pipeline.webhooks import Outbox, deliver_due, ingest

SECRET_ENV = "BENCH_WEBHOOK_SECRET"
RECEIVER = (
    "import os; from alter_pipeline.webhooks.receiver import serve; "
    "serve(os.environ['BENCH_WEBHOOK_SECRET'], port=int(os.environ['BENCH_PORT']), "
    "on_line=lambda line: None)"
)


def write_events(data_dir: Path, events: int, orders: int) -> None:
    start = datetime(2026, 11, 26, 10, tzinfo=UTC)
    rows = [
        {
            "event_id": f"evt_{n:08d}",
            "event_type": "order.status_changed",
            "order_id": n % orders,
            "product_id": None,
            "detected_at": start + timedelta(milliseconds=n),
            "sequence": n,
            "snapshot_id": "bench",
            "payload": json.dumps({"before": {"status": "new"}, "after": {"status": "paid"}}),
        }
        for n in range(1, events + 1)
    ]
    with Lake(data_dir).write() as writer:
        writer.write_table(
            ORDER_EVENTS_TABLE, pa.Table.from_pylist(rows, ORDER_EVENTS), "date=2026-11-26"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_receiver(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_PORT": str(port)}
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return receiver
        except OSError:
            time.sleep(0.05)
    receiver.kill()
    raise RuntimeError("the receiver did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-endpoint", type=int, default=8)
    args = parser.parse_args()

    os.environ[SECRET_ENV] = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as root:
        run(Path(root), args)


def run(root: Path, args: argparse.Namespace) -> None:
    settings = Settings(data_dir=root / "data", webhooks_file=root / "webhooks.yaml")
    write_events(settings.data_dir, args.events, args.orders)
    port = free_port()
    endpoint = {"id": "bench", "url": f"http://127.0.0.1:{port}/hooks", "events": ["*"]}
    settings.webhooks_file.write_text(
        yaml.safe_dump({"endpoints": [{**endpoint, "secret_env": SECRET_ENV}]}), "utf-8"
    )
    receiver = start_receiver(port)
    try:
        started = time.perf_counter()
        queued = ingest(settings)
        ingest_s = time.perf_counter() - started
        report = deliver_due(settings, concurrency=args.concurrency, per_endpoint=args.per_endpoint)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    with Outbox.open(settings.data_dir) as outbox:
        delivered = outbox.counts()["bench"].delivered
    assert delivered == args.events, f"only {delivered} of {args.events} delivered"
    print(
        f"ingest: {queued} deliveries queued in {ingest_s:.2f} s "
        f"({queued / ingest_s:,.0f} events/s)"
    )
    print(
        f"deliver: {report.delivered} deliveries in {report.elapsed_s:.2f} s = "
        f"{report.deliveries_per_s:,.0f} deliveries/s "
        f"({args.orders} orders, {args.per_endpoint} in flight per endpoint, "
        f"signed, verified by the receiver, each recorded in SQLite)"
    )


if __name__ == "__main__":
    main()
