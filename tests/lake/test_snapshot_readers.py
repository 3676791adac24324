"""The snapshot switch under concurrent readers in other processes: every answer comes from one
committed snapshot, and the `lake` link is never missing while it is swapped.

What they also show (docs/reliability.md, known limits): DuckDB lists a glob's files through the
link and checks and opens them a moment later, so a query caught by a switch in between fails
("No files found", "Cannot open file"; re-running it reads the new snapshot). It never answers
from a mix of two snapshots' files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pyarrow as pa

from alter_pipeline.lake import Lake

COMMITS = 30  # at least; more while the reader has not answered across a switch
MAX_COMMITS = 300
# Files listed through the link before a switch and checked or opened after it.
VANISHED = ("No such file or directory", "No files found that match the pattern")

# Queries both tables through the `lake` link in a loop until stdin closes; prints each answer.
READER = textwrap.dedent(
    """
    import json, select, sys, duckdb
    root = sys.argv[1]
    con = duckdb.connect()
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0)[0]:
        answer = {}
        for table in ("orders", "order_items"):
            try:
                rows, total = con.execute(
                    f"select count(*), sum(id) from read_parquet('{root}/lake/{table}/*.parquet')"
                ).fetchone()
                answer[table] = [rows, int(total or 0)]
            except Exception as error:
                answer[table] = str(error)
        print(json.dumps(answer), flush=True)
    """
)

# Stats the link's target in a tight loop until stdin closes; prints misses and targets seen.
WATCHER = textwrap.dedent(
    """
    import os, select, sys
    link = os.path.join(sys.argv[1], "lake")
    print("ready", flush=True)
    misses, targets, n = 0, set(), 0
    while True:
        n += 1
        if n % 2000 == 0 and select.select([sys.stdin], [], [], 0)[0]:
            break
        try:
            targets.add(os.readlink(link))
        except OSError:
            misses += 1
    print(misses, len(targets), flush=True)
    """
)


def commit(lake: Lake, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """A snapshot whose two tables have their own row counts and id sums."""
    orders = pa.table({"id": pa.array(range(n * 1000, n * 1000 + 10 + n), pa.int64())})
    items = pa.table({"id": pa.array(range(n * 7, n * 7 + 3 * n + 1), pa.int64())})
    with lake.write() as writer:
        writer.write_table("orders", orders)
        writer.write_table("order_items", items)
    return _facts(orders), _facts(items)


def _facts(table: pa.Table) -> tuple[int, int]:
    return table.num_rows, sum(table.column("id").to_pylist())


def start(script: str, root: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def test_readers_in_other_processes_see_one_whole_snapshot_per_table(tmp_path):
    # Old snapshots are kept for the test: garbage collection of a snapshot a slow reader still
    # reads is a documented limit (finish within `keep - 1` commits), not the switch.
    lake = Lake(tmp_path, keep=MAX_COMMITS + 1)
    committed = [commit(lake, 0)]
    reader = start(READER, tmp_path)
    answered = threading.Event()  # the reader answered during the commits and saw a switch
    lines: list[str] = []
    listening = threading.Thread(target=listen, args=(reader, lines, answered))
    listening.start()
    try:
        # Commit until the reader has answered across a switch, whatever the machine's speed.
        while len(committed) < COMMITS or not answered.is_set():
            assert len(committed) < MAX_COMMITS, f"the reader answered {len(lines)} times"
            committed.append(commit(lake, len(committed)))
    finally:  # the reader stops also when the test fails
        assert reader.stdin is not None
        reader.stdin.write("stop\n")
        reader.stdin.close()
        listening.join(60)
        reader.wait(60)
    answers = [json.loads(line) for line in lines]
    known = {table: {tuple(facts[i]) for facts in committed} for i, table in enumerate(
        ("orders", "order_items"))}  # fmt: skip
    seen = {table: {tuple(a[table]) if isinstance(a[table], list) else a[table] for a in answers}
            for table in known}  # fmt: skip
    for table in known:
        vanished = {a for a in seen[table] if isinstance(a, str) and a.startswith("IO Error")
                    and any(v in a for v in VANISHED)}  # fmt: skip
        assert seen[table] - vanished <= known[table], f"{table}: {seen[table] - vanished}"
    assert len(seen["orders"] & known["orders"]) > 1  # it saw the switch happen


def listen(reader: subprocess.Popen[str], lines: list[str], answered: threading.Event) -> None:
    """Collect the reader's answers; set `answered` once it has answered from two different
    committed snapshots (a query failed by a switch is no answer)."""
    assert reader.stdout is not None
    whole: set[str] = set()
    for line in reader.stdout:
        lines.append(line)
        answer = json.loads(line)
        if all(isinstance(facts, list) for facts in answer.values()):
            whole.add(line)
        if len(whole) > 1:
            answered.set()


def test_the_lake_link_is_never_missing_while_it_is_swapped(tmp_path):
    lake = Lake(tmp_path, keep=COMMITS + 1)
    commit(lake, 0)
    watcher = start(WATCHER, tmp_path)
    for n in range(1, COMMITS):
        commit(lake, n)
    output, _ = watcher.communicate("stop\n", timeout=60)
    misses, targets = map(int, output.split())
    assert targets > 1, "the watcher saw no switch"
    assert misses == 0, f"the lake link was missing {misses} times during {COMMITS} switches"
