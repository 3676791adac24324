"""Crashes: the sync, the rules run and the webhook deliverer killed with SIGKILL at points
chosen from the run's own progress (its Nth HTTP exchange: page fetched, PATCH sent, webhook
delivered; several N across the run), and a full disk (ENOSPC injected
into Parquet output and SQLite writes).

Afterwards the lake and the warehouse open, the tables agree with each other, the next run
completes, and the end state equals that of a run that never crashed: same tables, same
events, each status transition applied once, every webhook delivered.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from reliability_helpers import (
    RULES,
    SECRET_ENV,
    WEBHOOK_TIMEOUT_S,
    Shop,
    TransitionLog,
    delivery_problems,
    fast_client,
    lake_events,
    lake_tables,
    mutate,
    new_secret,
)

from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.lake import Lake
from alter_pipeline.rules import ledger, parse_rules
from alter_pipeline.rules.apply import apply_rules, make_plan
from alter_pipeline.rules.compile import find_matches
from alter_pipeline.rules.data import snapshot_connection
from alter_pipeline.sync import refresh_orders, run_sync
from alter_pipeline.warehouse import connect, ensure_views
from alter_pipeline.webhooks import deliver_due, ingest
from alter_pipeline.webhooks.outbox import Outbox
from alter_pipeline.webhooks.receiver import Reply, run_receiver

Factory = Callable[..., RunningEmulator]
WORKER = Path(__file__).with_name("crash_worker.py")
NOW = datetime(2026, 11, 20, 12, 5, tzinfo=UTC)  # rules' age counts from here in both runs
SEEDS = (1, 2)  # the store mutations between kills


# Kill points: the worker's Nth HTTP exchange, spread over runs of these lengths (measured):
# an incremental sync of 20 (killed early), a full sync of 8 (late), rules runs of 22 and 18
# (early, late), a deliverer's 92 deliveries, then 6 (late, midway).
STEP_SYNC_INC, STEP_SYNC_FULL = 5, 6
STEP_RULES = {4: 4, 5: 14}
STEP_WEBHOOKS = (60, 3)


def worker_config(emulator: RunningEmulator, data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": emulator.base_url,
        "key": emulator.key,
        "token": emulator.token,
        "data_dir": str(data_dir),
        "now": emulator.store.now().isoformat(),
        **extra,
    }


def kill_at_step(job: str, config: dict[str, Any], step: int) -> tuple[str, int]:
    """Run the worker; SIGKILL it as soon as it reports progress step `step` (its HTTP
    exchanges, see crash_worker.py). Returns ('killed', step) when the signal landed while the
    work was under way, ('finished', steps it made) when the work was done (the worker printed
    `done`) before it."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, str(WORKER), job, json.dumps(config)]
    with tempfile.TemporaryFile("w+") as errors:  # a file: a full pipe would stall the worker
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
            seen, done = 0, False
            for line in proc.stdout:
                if line.startswith("step "):
                    seen = int(line.split()[1])
                    if seen >= step:
                        proc.send_signal(signal.SIGKILL)
                        break
                done = done or line.strip() == "done"
            rest, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        errors.seek(0)
        assert proc.returncode in (0, -signal.SIGKILL), errors.read()
    if done or "done" in rest.split():
        return "finished", seen
    return "killed", seen


# Kill points tried and landed while the work was under way, per test (conftest.py prints the
# tally in the terminal summary).
TRIED: Counter[str] = Counter()
LANDED: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def report_crash_points(request: pytest.FixtureRequest) -> Iterator[None]:
    """This test's kills, carried on its report: conftest.py adds them up in the process that
    prints the summary (with pytest-xdist, not the worker that ran the test)."""
    tried_before, landed_before = TRIED.copy(), LANDED.copy()
    yield
    tried, landed = TRIED - tried_before, LANDED - landed_before
    if tried:
        request.node.user_properties.append(("crash_points", (dict(tried), dict(landed))))


def kill_while_working(
    name: str, job: str, config: dict[str, Any], step: int, tries: int = 5
) -> int:
    """`kill_at_step` until the kill lands while the work is under way: a run that finished
    first (in fewer steps) is followed by another (the same work again, which finds less left
    to do) killed halfway through the steps the finished one made. Returns the step killed at;
    fails the test when no kill landed within `tries`."""
    for _ in range(tries):
        TRIED[name] += 1
        outcome, seen = kill_at_step(job, config, step)
        if outcome == "killed":
            LANDED[name] += 1
            return seen
        step = max(1, seen // 2)
    pytest.fail(f"{name}: no kill landed while {job} was working in {tries} tries")


def lake_problems(data_dir: Path) -> list[str]:
    """The current snapshot's manifest matches its files; every view answers; items, history
    and events agree with the orders."""
    lake = Lake(data_dir)
    snapshot = lake.current()
    assert snapshot is not None
    problems = []
    for table, info in snapshot.manifest["tables"].items():
        files = list(snapshot.table_dir(table).rglob("*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        if rows != info["rows"]:
            problems.append(f"{table}: manifest says {info['rows']} rows, files hold {rows}")
    with connect(data_dir) as con:
        for table in snapshot.manifest["tables"]:
            con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        checks = {
            "items without an order": "SELECT count(*) FROM order_items ANTI JOIN orders "
            "USING (order_id)",
            "orders without a current history row": "SELECT count(*) FROM (SELECT order_id "
            "FROM orders EXCEPT SELECT order_id FROM orders_history WHERE is_current)",
            "current history rows of no order": "SELECT count(*) FROM (SELECT order_id FROM "
            "orders_history WHERE is_current EXCEPT SELECT order_id FROM orders)",
        }
        for what, sql in checks.items():
            count = con.execute(sql).fetchone()[0]
            if count:
                problems.append(f"{count} {what}")
    sequences = [e["sequence"] for e in lake_events(lake)]
    if sequences != list(range(1, len(sequences) + 1)):
        problems.append("event sequences have gaps or repeats")
    if sequences and snapshot.meta("last_sequence") != sequences[-1]:
        problems.append("manifest last_sequence disagrees with the events")
    return problems


def event_ids(lake: Lake) -> set[str]:
    return {e["event_id"] for e in lake_events(lake)}


# ---- the sync ----------------------------------------------------------------------------------


def test_a_sync_killed_at_points_across_its_run_loses_nothing(
    emulator_factory: Factory, tmp_path: Path
) -> None:
    emulator = emulator_factory(orders=100, products=6, seed=3, latency_ms=10)
    crashed, reference = Lake(tmp_path / "crashed"), Lake(tmp_path / "reference")
    with fast_client(emulator) as client:
        for lake in (crashed, reference):
            run_sync(client, lake, full=True, now=emulator.store.now())
        ensure_views(crashed.root)
        kills = zip(
            SEEDS, ("sync-incremental", "sync-full"), (STEP_SYNC_INC, STEP_SYNC_FULL), strict=True
        )
        for seed, job, step in kills:
            full = job == "sync-full"
            mutate(emulator.store, random.Random(seed))
            run_sync(client, reference, full=full, now=emulator.store.now())
            config = worker_config(emulator, crashed.root)
            kill_while_working("sync", job, config, step)
            assert lake_problems(crashed.root) == []
            run_sync(client, crashed, full=full, now=emulator.store.now())
            assert lake_problems(crashed.root) == []
            assert not list(crashed.snapshots_dir.glob(".tmp-*"))
            assert lake_tables(crashed) == lake_tables(reference)
            assert event_ids(crashed) == event_ids(reference)


# ---- the rules run -------------------------------------------------------------------------------


def _synced(emulator: RunningEmulator, data_dir: Path) -> Lake:
    lake = Lake(data_dir)
    with fast_client(emulator) as client:
        run_sync(client, lake, full=True, now=emulator.store.now())
    return lake


def _apply(emulator: RunningEmulator, lake: Lake, run_id: str, claim_ttl: float = 900.0):
    ruleset = parse_rules(textwrap.dedent(RULES))
    with (
        fast_client(emulator) as client,
        ledger.Ledger.for_data_dir(lake.root, claim_ttl=claim_ttl) as book,
    ):
        return apply_rules(client, lake, ruleset, run_id=run_id, now=NOW, book=book,
                           refresh=refresh_orders)  # fmt: skip


def _statuses(emulator: RunningEmulator) -> dict[int, str]:
    return {o["id"]: o["orderStatus"] for o in emulator.store.orders_list()}


def _planned_statuses(emulator: RunningEmulator, lake: Lake) -> dict[int, str]:
    """What a run that never crashed leaves: each order the plan gives a rule in its target
    status, every other order as it is."""
    ruleset = parse_rules(textwrap.dedent(RULES))
    with snapshot_connection(lake.current()) as con:
        plan = make_plan(ruleset, find_matches(con, ruleset.enabled, NOW))
    assert plan.candidates, "nothing for the rules to do: the test would prove nothing"
    return _statuses(emulator) | {c.order_id: c.to_status for c in plan.live()}


@pytest.mark.parametrize("seed", [4, 5])
def test_a_rules_run_killed_early_or_late_applies_each_transition_once(
    seed: int, emulator_factory: Factory, tmp_path: Path
) -> None:
    log = TransitionLog()
    emulator = emulator_factory(orders=100, seed=seed, latency_ms=10, faults=[log])
    lake = _synced(emulator, tmp_path)
    expected = _planned_statuses(emulator, lake)
    config = worker_config(emulator, lake.root, rules=RULES, run_id="killed", now=NOW.isoformat())
    kill_while_working("rules", "rules", config, STEP_RULES[seed])
    book = lake.root / ledger.LEDGER_FILE
    if book.exists():  # else the run was killed before it claimed anything
        with sqlite3.connect(book) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert lake_problems(lake.root) == []
    # The killed run's claims are stale once their TTL (15 min) passes; the test does not wait.
    report = _apply(emulator, lake, "next", claim_ttl=0.0)
    assert not report.failed
    assert _statuses(emulator) == expected
    assert max(Counter(order_id for order_id, _, _ in log.moves).values()) == 1
    assert lake_problems(lake.root) == []


# ---- the webhook deliverer -----------------------------------------------------------------------


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = new_secret()
    monkeypatch.setenv(SECRET_ENV, value)
    return value


@pytest.fixture
def shop(emulator_factory: Factory, tmp_path: Path, secret: str) -> Iterator[Shop]:
    slow = lambda incoming: Reply(204, delay_s=0.01)  # noqa: E731
    with run_receiver(secret, behaviour=slow) as receiver:
        made = Shop(emulator_factory(orders=80, seed=6), tmp_path, receiver)
        made.sync(full=True, emit_initial=True)
        yield made
        made.close()


def test_a_deliverer_killed_at_points_across_its_run_loses_no_event(shop: Shop) -> None:
    subscriptions = str(shop.settings.webhooks_file)
    config = worker_config(shop.emulator, shop.data_dir, webhooks_file=subscriptions)
    ingested = 0
    for seed, step in zip(SEEDS, STEP_WEBHOOKS, strict=True):
        kill_while_working("webhooks", "webhooks", config, step)
        with Outbox.open(shop.data_dir) as outbox:  # opens; ingestion is all or nothing
            assert outbox.cursor() in (ingested, len(lake_events(shop.lake)))
        # Rows the killed run had claimed are free again once their lease (timeout + 30 s)
        # ends; the test moves the clock instead of waiting.
        lease = timedelta(seconds=WEBHOOK_TIMEOUT_S + 31)
        deliver_due(shop.settings, now=datetime.now(UTC) + lease)
        shop.deliver()
        assert delivery_problems(shop.lake, shop.receiver) == []
        ingested = len(lake_events(shop.lake))
        mutate(shop.emulator.store, random.Random(seed))  # new events for the next kill
        shop.sync()


# ---- a full disk -----------------------------------------------------------------------------


def _no_space(after_calls: int) -> Callable[..., Any]:
    calls = {"n": 0}
    original = pq.ParquetWriter.write_table

    def write_table(self: pq.ParquetWriter, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, *args, **kwargs)

    return write_table


def test_a_full_disk_during_a_sync_keeps_the_previous_snapshot(
    emulator_factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = emulator_factory(orders=150, seed=9)
    lake, reference = Lake(tmp_path / "lake"), Lake(tmp_path / "reference")
    with fast_client(emulator) as client:
        for target in (lake, reference):
            run_sync(client, target, full=True, now=emulator.store.now())
        for after_calls in (0, 3):  # the first Parquet write fails, or a later one
            before = lake.current()
            mutate(emulator.store, random.Random(after_calls))
            with monkeypatch.context() as patch:
                patch.setattr(pq.ParquetWriter, "write_table", _no_space(after_calls))
                with pytest.raises(OSError, match="No space left"):
                    run_sync(client, lake, now=emulator.store.now())
            assert lake.current() == before and not list(lake.snapshots_dir.glob(".tmp-*"))
            for target in (lake, reference):
                run_sync(client, target, now=emulator.store.now())
            assert lake_problems(lake.root) == []
            assert lake_tables(lake) == lake_tables(reference)
            assert event_ids(lake) == event_ids(reference)


def test_a_full_disk_while_recording_a_rules_run_never_applies_a_transition_twice(
    emulator_factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = TransitionLog()
    emulator = emulator_factory(orders=150, seed=10, faults=[log])
    lake = _synced(emulator, tmp_path / "lake")
    with monkeypatch.context() as patch:
        patch.setattr(pq.ParquetWriter, "write_table", _no_space(0))
        with pytest.raises(OSError, match="No space left"):
            _apply(emulator, lake, "disk-full")
    applied = len(log.moves)
    assert applied
    report = _apply(emulator, lake, "next")
    assert not report.failed and not report.applied
    assert all(r.detail.startswith("already applied") for r in report.rows)
    assert len(log.moves) == applied


def test_a_full_disk_in_the_outbox_resends_with_the_same_webhook_id(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = sqlite3.OperationalError("database or disk is full")
    with monkeypatch.context() as patch:
        patch.setattr(Outbox, "record_delivered", lambda *a, **k: (_ for _ in ()).throw(full))
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            ingest(shop.settings)
            deliver_due(shop.settings)
    sent_before = {r.webhook_id for r in shop.receiver.accepted()}
    assert sent_before
    deliver_due(shop.settings, now=datetime.now(UTC) + timedelta(seconds=WEBHOOK_TIMEOUT_S + 31))
    shop.deliver()
    assert delivery_problems(shop.lake, shop.receiver) == []
