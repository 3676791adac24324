import subprocess
import sys

import pyarrow as pa

from alter_pipeline.lake import Lake
from alter_pipeline.warehouse import WAREHOUSE_FILE, connect, ensure_views


def commit(lake: Lake, ids: list[int]) -> None:
    with lake.write() as writer:
        writer.write_table("orders", pa.table({"order_id": pa.array(ids, pa.int64())}))


def test_views_answer_with_the_current_snapshot(tmp_path):
    lake = Lake(tmp_path)
    commit(lake, [1, 2])
    ensure_views(tmp_path)
    commit(lake, [1, 2, 3])
    with connect(tmp_path) as con:
        assert con.execute("select count(*) from orders").fetchone() == (3,)


def test_unchanged_views_do_not_touch_the_database_file(tmp_path):
    lake = Lake(tmp_path)
    commit(lake, [1])
    assert ensure_views(tmp_path).created == ["orders"]
    assert ensure_views(tmp_path).created == []


def test_analyst_holding_the_file_open_does_not_fail_a_sync(tmp_path):
    lake = Lake(tmp_path)
    commit(lake, [1])
    ensure_views(tmp_path)
    holder = subprocess.Popen(  # another process, as the DuckDB CLI would be
        [sys.executable, "-c", ANALYST.format(path=str(tmp_path / WAREHOUSE_FILE))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "1"
        with lake.write() as writer:  # a new table changes the set of views
            writer.write_table("products", pa.table({"product_id": pa.array([5], pa.int64())}))
        assert "held open" in ensure_views(tmp_path).skipped_reason
        with connect(tmp_path) as con:  # queries still answer, from memory views
            assert con.execute("select count(*) from products").fetchone() == (1,)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "1"  # the analyst's session still works
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert ensure_views(tmp_path).created == ["orders", "products"]


ANALYST = """
import duckdb, sys
con = duckdb.connect({path!r})
print(con.execute("select count(*) from orders").fetchone()[0], flush=True)
sys.stdin.readline()
print(con.execute("select count(*) from orders").fetchone()[0], flush=True)
"""


def test_query_falls_back_to_memory_views_without_a_database_file(tmp_path):
    commit(Lake(tmp_path), [4, 5])
    with connect(tmp_path) as con:
        assert con.execute("select sum(order_id) from orders").fetchone() == (9,)
