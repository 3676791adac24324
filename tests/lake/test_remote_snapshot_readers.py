"""The snapshot switch on the object store (moto's S3 server) under concurrent readers in other
processes: every answer comes from one committed snapshot, and CURRENT is never missing.

A reader reads as `alter-pipeline query` does on a remote lake (`object_store_connection`):
CURRENT once, then that snapshot's manifest and files. Snapshots are immutable once uploaded,
so unlike the local link (test_snapshot_readers.py) no query may fail either."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pyarrow as pa

from alter_pipeline.lake import Lake

COMMITS = 10  # at least; more while the reader has not answered three times
MAX_COMMITS = 200

# Queries both tables of the current snapshot in a loop until stdin closes; prints each answer.
READER = textwrap.dedent(
    """
    import json, select, sys
    from pathlib import Path
    from alter_pipeline.lake import Lake
    from alter_pipeline.warehouse import object_store_connection
    lake = Lake(Path(sys.argv[2]), remote=sys.argv[1])
    object_store_connection([lake]).close()  # httpfs or its fallback settled before "ready"
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0)[0]:
        try:
            con = object_store_connection([lake])
            answer = [list(con.execute(f"select count(*), sum(id) from {table}").fetchone())
                      for table in ("orders", "order_items")]
            con.close()
        except Exception as error:
            answer = str(error)
        print(json.dumps(answer), flush=True)
    """
)

# Reads CURRENT in a tight loop until stdin closes; prints misses and snapshots seen.
WATCHER = textwrap.dedent(
    """
    import select, sys
    from alter_pipeline.lake.remote import RemoteStore
    store = RemoteStore(sys.argv[1])
    print("ready", flush=True)
    misses, seen = 0, set()
    while not select.select([sys.stdin], [], [], 0)[0]:
        try:
            current = store.current_id()
        except OSError:
            current = None
        if current is None:
            misses += 1
        else:
            seen.add(current)
    print(misses, len(seen), flush=True)
    """
)

Facts = tuple[tuple[int, int], tuple[int, int]]


def commit(lake: Lake, n: int) -> Facts:
    """A snapshot whose two tables have their own row counts and id sums (its manifest)."""
    orders = pa.table({"id": pa.array(range(n * 1000, n * 1000 + 10 + n), pa.int64())})
    items = pa.table({"id": pa.array(range(n * 7, n * 7 + 3 * n + 1), pa.int64())})
    with lake.write() as writer:
        writer.write_table("orders", orders)
        writer.write_table("order_items", items)
    return _facts(orders), _facts(items)


def _facts(table: pa.Table) -> tuple[int, int]:
    return table.num_rows, sum(table.column("id").to_pylist())


def start(script: str, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def test_readers_of_the_object_store_see_one_whole_snapshot_and_current_never_missing(
    s3_url: str, tmp_path: Path
) -> None:
    # Old snapshots are kept: collecting one a slow reader still reads is a documented limit.
    lake = Lake(tmp_path / "writer", remote=s3_url, keep=MAX_COMMITS + 1)
    committed = [commit(lake, 0)]
    reader = start(READER, s3_url, str(tmp_path / "reader"))
    answered = threading.Event()  # the reader answered during the commits and saw a switch
    lines: list[str] = []
    listening = threading.Thread(target=listen, args=(reader, lines, answered))
    listening.start()
    watcher = start(WATCHER, s3_url)
    try:
        # Commit until the reader has answered across a switch, whatever the machine's speed.
        while len(committed) < COMMITS or not answered.is_set():
            assert len(committed) < MAX_COMMITS, f"the reader answered {len(lines)} times"
            committed.append(commit(lake, len(committed)))
    finally:  # the readers stop also when the test fails
        assert reader.stdin is not None
        reader.stdin.write("stop\n")
        reader.stdin.close()
        listening.join(120)
        reader.wait(120)
        watched, _ = watcher.communicate("stop\n", timeout=120)
    whole = {(orders, items) for orders, items in committed}
    answers = [json.loads(line) for line in lines]
    seen = {tuple(tuple(facts) for facts in a) if isinstance(a, list) else a for a in answers}
    assert seen <= whole, f"answers of no committed snapshot: {seen - whole}"
    assert len(seen) > 1  # it saw the switch happen
    misses, snapshots = map(int, watched.split())
    assert snapshots > 1, "the watcher saw no switch"
    assert misses == 0, f"CURRENT was missing {misses} times during {len(committed)} switches"


def listen(reader: subprocess.Popen[str], lines: list[str], answered: threading.Event) -> None:
    """Collect the reader's answers; set `answered` once there are three, two of them
    different (it has seen a switch)."""
    assert reader.stdout is not None
    for line in reader.stdout:
        lines.append(line)
        if len(lines) >= 3 and len(set(lines)) > 1:
            answered.set()
