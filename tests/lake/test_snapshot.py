import os
import signal
import subprocess
import sys
import textwrap
import threading

import pyarrow as pa
import pytest
from lake_helpers import batch, write_snapshot

from alter_pipeline.lake import Lake, LakeBusyError


def test_commit_switches_the_lake_link_to_the_new_snapshot(tmp_path):
    lake = Lake(tmp_path)
    first = write_snapshot(lake, orders=[1, 2])
    second = write_snapshot(lake, orders=[1, 2, 3])
    assert lake.current().snapshot_id == second
    assert lake.current().parent_id == first
    assert lake.previous().read_table("orders").num_rows == 2
    assert (tmp_path / "lake" / "orders").is_dir()


def test_tables_not_rewritten_are_carried_over(tmp_path):
    lake = Lake(tmp_path)
    write_snapshot(lake, orders=[1], products=[7, 8])
    write_snapshot(lake, orders=[1, 2])
    assert lake.current().read_table("products").column("id").to_pylist() == [7, 8]
    assert lake.current().rows("products") == 2


def test_failed_write_leaves_the_previous_snapshot_current(tmp_path):
    lake = Lake(tmp_path)
    first = write_snapshot(lake, orders=[1])
    with pytest.raises(RuntimeError), lake.write() as writer:
        writer.write_table("orders", batch([1, 2, 3]))
        raise RuntimeError("API went away")
    assert lake.current().snapshot_id == first
    assert not list((tmp_path / "snapshots").glob(".tmp-*"))


def test_empty_table_still_gets_a_file_with_its_schema(tmp_path):
    lake = Lake(tmp_path)
    with lake.write() as writer:
        writer.table("orders", pa.schema([("id", pa.int64())]))
    assert lake.current().read_table("orders").schema.field("id").type == pa.int64()


def test_old_snapshots_beyond_keep_are_removed(tmp_path):
    lake = Lake(tmp_path, keep=2)
    ids = [write_snapshot(lake, orders=[n]) for n in range(4)]
    remaining = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert remaining == ids[-2:]


def test_second_writer_waits_for_the_lock_then_gives_up_clearly(tmp_path):
    lake = Lake(tmp_path)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lake.lock():
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(5)
    try:
        with pytest.raises(LakeBusyError, match="another sync"), lake.write(lock_timeout=0.3):
            pass
    finally:
        release.set()
        thread.join()


def test_sigkill_during_a_write_leaves_the_previous_snapshot_readable(tmp_path):
    lake = Lake(tmp_path)
    first = write_snapshot(lake, orders=[1, 2])
    script = textwrap.dedent(
        f"""
        import os, signal, pyarrow as pa
        from alter_pipeline.lake import Lake
        with Lake({str(tmp_path)!r}).write() as writer:
            writer.write_table("orders", pa.table({{"id": pa.array(range(10**5))}}))
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert lake.current().snapshot_id == first
    assert lake.current().read_table("orders").num_rows == 2
    write_snapshot(lake, orders=[1, 2, 3])  # the next run cleans up and commits
    assert not list((tmp_path / "snapshots").glob(".tmp-*"))
    assert os.path.islink(tmp_path / "lake")


def test_a_new_snapshot_id_sorts_after_its_parent_even_when_the_clock_is_behind():
    from alter_pipeline.lake.snapshot import _new_snapshot_id

    ahead = "29991231T235959999998Z-abcdef"  # written by a machine whose clock runs ahead
    assert _new_snapshot_id(after=ahead) > ahead
    assert _new_snapshot_id(after=None) < ahead


def test_view_glob_of_a_local_lake_reads_through_the_lake_link(tmp_path):
    lake = Lake(tmp_path)
    write_snapshot(lake, orders=[1])
    assert lake.view_glob("orders") == f"{tmp_path}/lake/orders/**/*.parquet"
    assert lake.location == str(tmp_path)
