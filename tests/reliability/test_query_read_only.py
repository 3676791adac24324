"""`alter-pipeline query` only reads, and only the lake (issue 13, point 3 and 4).

Through the real command line in a subprocess, against a lake synced from the emulator: the
process environment, files outside the lake, writes (COPY over a lake Parquet file, DROP after
a SELECT), extension installs and settings changes are refused with one line and exit 2, and
the lake is byte for byte what it was. A data directory copied elsewhere answers from itself.
A full sync rebuilds over a previous snapshot it cannot read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from alter_pipeline.api import AlterClient
from alter_pipeline.cli import app
from alter_pipeline.emulator import RunningEmulator
from alter_pipeline.lake import Lake
from alter_pipeline.sync import UnreadableSnapshotError, run_sync
from alter_pipeline.warehouse import (
    QueryRefused,
    check_read_only,
    ensure_views,
    read_only_connection,
)

SECRET_KEY = "query-test-key-0a9f3c"


@pytest.fixture
def synced(emulator: RunningEmulator, tmp_path: Path) -> Path:
    """A data directory with a synced lake and its warehouse file."""
    data = tmp_path / "data"
    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        run_sync(client, Lake(data), now=emulator.store.now())
    ensure_views(data)
    return data


def run_query(data: Path, sql: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ALTER_DATA_DIR=str(data), ALTER_API_KEY=SECRET_KEY)
    command = [sys.executable, "-m", "alter_pipeline.cli", "query", sql, *extra]
    return subprocess.run(
        command, env=env, cwd=data.parent, capture_output=True, text=True, timeout=60
    )


def lake_digest(data: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((data / "lake").resolve().rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert "Traceback" not in result.stderr


def test_query_cannot_read_its_own_environment(synced: Path) -> None:
    result = run_query(synced, "select content from read_text('/proc/self/environ')")
    assert_one_line_refusal(result, "may read only the lake")
    assert SECRET_KEY not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "sql",
    [
        "select * from read_csv('/etc/passwd')",
        "select * from glob('/*')",
        "select * from read_text('{lake}/../../warehouse.duckdb')",
        "select * from read_parquet('{lake}/../snapshots/*/orders/*.parquet')",
        "attach '/tmp/elsewhere.duckdb'",
    ],
    ids=["etc-passwd", "glob-root", "dot-dot-out-of-the-lake", "older-snapshots", "attach"],
)
def test_a_read_only_connection_reaches_no_file_outside_the_lake(synced: Path, sql: str) -> None:
    with read_only_connection(synced) as con, pytest.raises(duckdb.PermissionException):
        con.execute(sql.format(lake=synced / "lake")).fetchall()


@pytest.mark.parametrize(
    "sql",
    [
        "copy (select 1 as a) to 'x.parquet'",
        "select 1; drop view orders",
        "explain analyze copy (select 1 as a) to 'x.parquet'",
        "create table orders_copy as select * from orders",
        "install httpfs",
        "load httpfs",
        "set enable_external_access = true",
        "pragma enable_profiling",
        "export database 'elsewhere'",
    ],
)
def test_statements_that_do_more_than_read_are_refused_before_running(sql: str) -> None:
    with pytest.raises(QueryRefused, match="query only reads"):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql", ["select 1", "show tables", "describe orders", "summarize orders", "explain select 1"]
)
def test_statements_that_read_are_allowed(sql: str) -> None:
    check_read_only(sql)


def test_a_copy_over_a_lake_file_is_refused_and_the_lake_unchanged(synced: Path) -> None:
    before = lake_digest(synced)
    part = next((synced / "lake" / "orders").glob("*.parquet"))
    result = run_query(synced, f"copy (select 1 as a) to '{part}'")
    assert_one_line_refusal(result, "query only reads: a COPY statement is refused")
    assert lake_digest(synced) == before


def test_query_still_answers_reads(synced: Path) -> None:
    result = run_query(synced, "select count(*) as n from orders; ", "--format", "csv")
    assert result.returncode == 0 and result.stdout.splitlines()[1] == "120", result.stderr


def test_an_empty_query_is_one_line(synced: Path) -> None:
    assert_one_line_refusal(run_query(synced, ""), "no SQL statement given")


def test_a_huge_result_in_table_format_shows_the_first_rows(synced: Path) -> None:
    result = run_query(synced, "select range from range(5000000)")
    assert result.returncode == 0, result.stderr
    assert "showing the first 1000 rows" in result.stderr
    assert "│ 999 " in result.stdout and "│ 1000 " not in result.stdout


def test_a_copied_data_dir_answers_from_itself_once_the_original_is_gone(
    synced: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "moved" / "data"
    shutil.copytree(synced, copy, symlinks=True)
    with duckdb.connect(":memory:") as con:  # the copy's own rows differ from the original's
        con.execute(
            f"copy (select * from read_parquet('{copy}/lake/orders/**/*.parquet') limit 7) "
            f"to '{copy}/lake/orders/part-0.parquet'"
        )
    for extra in (copy / "lake").resolve().joinpath("orders").glob("*.parquet"):
        if extra.name != "part-0.parquet":
            extra.unlink()
    shutil.rmtree(synced)
    result = run_query(copy, "select count(*) from orders", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "7"


def overwrite_lake_orders(data: Path) -> None:
    for part in (data / "lake" / "orders").glob("*.parquet"):
        with duckdb.connect(":memory:") as con:  # what `query` allowed before: COPY over it
            con.execute(f"copy (select 1 as a) to '{part}'")


def test_an_incremental_sync_over_an_unreadable_snapshot_says_to_run_a_full_one(
    emulator: RunningEmulator, synced: Path
) -> None:
    overwrite_lake_orders(synced)
    client = AlterClient(emulator.base_url, emulator.key, emulator.token)
    with client, pytest.raises(UnreadableSnapshotError, match=r"run `alter-pipeline sync --full`"):
        run_sync(client, Lake(synced), now=emulator.store.now())


def test_a_full_sync_rebuilds_over_a_previous_snapshot_it_cannot_read(
    emulator: RunningEmulator, synced: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overwrite_lake_orders(synced)
    env = {"ALTER_API_BASE_URL": emulator.base_url, "ALTER_API_KEY": emulator.key,
           "ALTER_API_TOKEN": emulator.token, "ALTER_DATA_DIR": str(synced),
           "DAGSTER_HOME": str(synced.parent / "dagster_home")}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["sync", "--full"])
    assert result.exit_code == 0, result.output
    said = [line for line in result.stdout.splitlines() if "could not be read" in line]
    assert len(said) == 1 and "change events were computed against nothing" in said[0]
    result = run_query(synced, "select count(*) from orders", "--format", "csv")
    assert result.stdout.splitlines()[1] == "120", result.stderr


def test_a_query_over_an_object_store_lake_reads_only_the_lake(
    emulator: RunningEmulator, s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTER_DATA_DIR", s3_url)
    monkeypatch.setenv("ALTER_CACHE_DIR", str(tmp_path / "syncer"))
    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        run_sync(client, Lake(tmp_path / "syncer", remote=s3_url), now=emulator.store.now())
    monkeypatch.setenv("ALTER_CACHE_DIR", str(tmp_path / "analyst"))  # another machine
    with read_only_connection(tmp_path / "analyst") as con:
        assert con.execute("select count(*) from orders").fetchone() == (120,)
        with pytest.raises(duckdb.PermissionException):
            con.execute("select content from read_text('/proc/self/environ')").fetchall()
