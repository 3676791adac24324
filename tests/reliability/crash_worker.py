"""One job in a process of its own, to be killed with SIGKILL by test_crashes.py.

    python crash_worker.py JOB CONFIG_JSON

JOB is `sync-full`, `sync-incremental`, `rules` or `webhooks`; CONFIG_JSON names the emulator
(base_url, key, token), the data dir, the clock (`now`, ISO), the run id and the webhooks file.
Prints `go` once its imports are done, `step N METHOD PATH` after each HTTP exchange the job
makes (pages fetched, PATCHes sent, webhooks delivered: the run's own progress, which the test
picks its kill points from) and `done` at the end.
"""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from alter_pipeline.api import AlterClient, RetryPolicy
from alter_pipeline.config import Settings
from alter_pipeline.lake import Lake
from alter_pipeline.rules import parse_rules
from alter_pipeline.rules.apply import apply_rules
from alter_pipeline.sync import refresh_orders, run_sync
from alter_pipeline.webhooks import deliver_due, ingest

_steps = itertools.count(1)
_printing = threading.Lock()  # the sync's pages arrive on two connections at once


def _step(request: httpx.Request) -> None:
    with _printing:
        print(f"step {next(_steps)} {request.method} {request.url.path}", flush=True)


def report_progress() -> None:
    """Print a step after every HTTP response the job receives, sync and async alike."""
    send, send_async = httpx.Client.send, httpx.AsyncClient.send

    def sent(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = send(self, request, **kwargs)
        _step(request)
        return response

    async def sent_async(
        self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        response = await send_async(self, request, **kwargs)
        _step(request)
        return response

    httpx.Client.send = sent  # type: ignore[method-assign]
    httpx.AsyncClient.send = sent_async  # type: ignore[method-assign]


def client(config: dict[str, Any]) -> AlterClient:
    retry = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
    return AlterClient(config["base_url"], config["key"], config["token"], retry=retry)


def run(job: str, config: dict[str, Any]) -> None:
    data_dir = Path(config["data_dir"])
    now = datetime.fromisoformat(config["now"])
    if job.startswith("sync-"):
        with client(config) as api:
            run_sync(api, Lake(data_dir), full=job == "sync-full", now=now, concurrency=2)
    elif job == "rules":
        ruleset = parse_rules(textwrap.dedent(config["rules"]))
        with client(config) as api:
            apply_rules(api, Lake(data_dir), ruleset, run_id=config["run_id"], now=now,
                        concurrency=2, refresh=refresh_orders)  # fmt: skip
    elif job == "webhooks":
        settings = Settings(data_dir=data_dir, webhooks_file=Path(config["webhooks_file"]))
        ingest(settings)
        deliver_due(settings, concurrency=4)
    else:
        raise SystemExit(f"unknown job {job!r}")


def main() -> None:
    job, config = sys.argv[1], json.loads(sys.argv[2])
    report_progress()
    print("go", flush=True)
    run(job, config)
    print("done", flush=True)


if __name__ == "__main__":
    main()
