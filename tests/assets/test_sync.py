"""A real materialize of the sync assets against the emulator, checked with DuckDB."""

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pyarrow as pa

from alter_pipeline.api import AlterClient
from alter_pipeline.lake import Lake, schemas
from alter_pipeline.sync import run_sync
from alter_pipeline.warehouse import connect


def check_results(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_sync_writes_every_order_and_item_exactly_once(emulator, run_sync_job, tmp_path):
    result = run_sync_job(emulator, full=True)
    assert result.success
    expected = emulator.store.orders_list()
    with connect(tmp_path) as con:
        orders = con.execute("select order_id from orders order by 1").fetchall()
        items = con.execute("select order_item_id from order_items order by 1").fetchall()
    assert [r[0] for r in orders] == sorted(o["id"] for o in expected)
    assert [r[0] for r in items] == sorted(i["id"] for o in expected for i in o["productItems"])


def test_totals_are_exact_to_the_cent(emulator, run_sync_job, tmp_path):
    run_sync_job(emulator, full=True)
    expected = {o["id"]: o["totalPrice"]["value"] for o in emulator.store.orders_list()}
    with connect(tmp_path) as con:
        rows = dict(con.execute("select order_id, total_value from orders").fetchall())
        revenue = con.execute("select sum(total_price_value) from order_items").fetchone()[0]
    assert rows == {k: Decimal(v) for k, v in expected.items()}
    assert revenue == sum(Decimal(v) for v in expected.values())


def test_unicode_names_and_nulls_are_kept(emulator, run_sync_job, tmp_path):
    run_sync_job(emulator, full=True)
    items = [i for o in emulator.store.orders_list() for i in o["productItems"]]
    polish = {i["id"]: i["material"]["name"]["pl"] for i in items}
    null_measures = {i["id"] for i in items if i["size"]["measureSize"] is None}
    no_group = {o["id"] for o in emulator.store.orders_list() if o["productGroup"] is None}
    with connect(tmp_path) as con:
        got_polish = dict(
            con.execute("select order_item_id, material_name_pl from order_items").fetchall()
        )
        got_null_measures = {
            r[0]
            for r in con.execute(
                "select order_item_id from order_items where measure_size is null"
            ).fetchall()
        }
        got_no_group = {
            r[0]
            for r in con.execute(
                "select order_id from orders where product_group_id is null"
            ).fetchall()
        }
    assert got_polish == polish
    assert any(any(ch in name for ch in "ąęłóśżźćń") for name in polish.values())
    assert got_null_measures == null_measures
    assert got_no_group == no_group


def test_materializations_carry_counts_schema_preview_and_requests(emulator, run_sync_job):
    result = run_sync_job(emulator, full=True)
    orders = next(
        m for m in result.get_asset_materialization_events() if m.asset_key.path == ["orders"]
    ).materialization.metadata
    assert orders["dagster/row_count"].value == emulator.store.order_count()
    assert [c.name for c in orders["dagster/column_schema"].value.columns][:3] == [
        "storefront_id",
        "order_id",
        "customizer_id",
    ]
    assert orders["preview"].value.startswith("| storefront_id | order_id |")
    newest = max(o["id"] for o in emulator.store.orders_list())
    assert f" | {newest} | " in orders["preview"].value.splitlines()[2]  # newest row first
    assert orders["api_requests"].value >= 1
    assert orders["sync_duration_s"].value > 0


def _data_versions(result) -> dict[str, str | None]:
    return {
        m.asset_key.to_user_string(): m.materialization.tags.get("dagster/data_version")
        for m in result.get_asset_materialization_events()
    }


def test_synced_tables_the_models_read_carry_a_content_data_version(emulator, run_sync_job):
    first = _data_versions(run_sync_job(emulator, full=True))
    unchanged = _data_versions(run_sync_job(emulator))
    emulator.store.create_order(status="paid")
    changed = _data_versions(run_sync_job(emulator))
    for table in ("orders", "order_items", "products"):
        assert first[table] and first[table] == unchanged[table], table
    assert changed["orders"] != first["orders"]
    assert changed["order_items"] != first["order_items"]
    assert changed["products"] == first["products"]


def test_all_checks_pass_on_a_clean_store(emulator, run_sync_job):
    checks = check_results(run_sync_job(emulator, full=True))
    assert checks and all(checks.values()), checks


def test_the_checks_keep_their_keys_and_run_in_one_step(emulator, run_sync_job):
    """Asset and name are each check's history in the UI: they never change."""
    result = run_sync_job(emulator, full=True)
    keys = {(e.asset_key.path[-1], e.check_name) for e in result.get_asset_check_evaluations()}
    assert keys == {
        ("orders", "order_id_unique"),
        ("order_items", "order_item_id_unique"),
        ("products", "product_id_unique"),
        ("orders", "totals_match_items"),
        ("order_items", "items_reference_orders"),
        ("orders", "row_count_matches_api"),
        ("products", "row_count_matches_api"),
        ("rejected_records", "no_rejected_records"),
    }
    check_steps = {e.step_key for e in result.all_events if e.is_step_start} - {
        "alter_sync",
        "warehouse_views",
    }
    assert check_steps == {"lake_checks"}


def test_a_failing_check_is_reported_with_the_offending_ids(emulator_factory, run_sync_job):
    from alter_pipeline.emulator.faults import BadRecordFault

    emulator = emulator_factory(orders=60, faults=[BadRecordFault(1.0)])
    result = run_sync_job(emulator, full=True)
    assert result.success  # a bad record never stops the sync
    evaluations = {
        (e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()
    }
    rejected = evaluations[("rejected_records", "no_rejected_records")]
    assert not rejected.passed
    named = rejected.metadata["offending_ids"].value
    assert named and all(text.startswith("order not-a-number-") for text in named)
    assert not evaluations[("orders", "row_count_matches_api")].passed


def test_sync_killed_midway_leaves_the_old_tables_intact(emulator_factory, tmp_path):
    emulator = emulator_factory(orders=1500, latency_ms=40)
    data_dir = tmp_path / "data"
    lake = Lake(data_dir)
    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        run_sync(client, lake, full=True)
    before = lake.current()
    emulator.store.create_order()
    env = dict(
        os.environ,
        ALTER_API_BASE_URL=emulator.base_url,
        ALTER_API_KEY=emulator.key,
        ALTER_API_TOKEN=emulator.token,
        ALTER_DATA_DIR=str(data_dir),
        DAGSTER_HOME=str(tmp_path / "home"),
    )
    command = [sys.executable, "-m", "alter_pipeline.cli", "sync", "--full"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list((data_dir / "snapshots").glob(".tmp-*/orders/*.parquet")):
        assert time.monotonic() < deadline, "the CLI sync never started writing"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lake.current().snapshot_id == before.snapshot_id
    with connect(data_dir) as con:
        counts = con.execute(
            "select (select count(*) from orders), "
            "(select count(*) from order_items i anti join orders o using (order_id))"
        ).fetchone()
    assert counts == (before.rows("orders"), 0)
    with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
        run_sync(client, lake, full=True)  # the next run cleans up and completes
    assert lake.current().rows("orders") == before.rows("orders") + 1
    assert not list((data_dir / "snapshots").glob(".tmp-*"))


def test_reader_holding_the_warehouse_open_does_not_break_a_sync(emulator, run_sync_job, tmp_path):
    run_sync_job(emulator, full=True)
    analyst = subprocess.Popen(
        [sys.executable, "-c", ANALYST, str(tmp_path / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = int(analyst.stdout.readline())
        emulator.store.create_order()
        assert run_sync_job(emulator, full=True).success
        analyst.stdin.write("\n")
        analyst.stdin.flush()
        assert int(analyst.stdout.readline()) == first + 1  # same session sees the new snapshot
    finally:
        analyst.stdin.close()
        analyst.wait(10)


ANALYST = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write, as the DuckDB CLI opens it
print(con.execute("select count(*) from orders").fetchone()[0], flush=True)
sys.stdin.readline()
print(con.execute("select count(*) from orders").fetchone()[0], flush=True)
"""


def test_two_syncs_at_once_are_serialised_and_both_commit(emulator, tmp_path):
    import threading

    lake, reports, errors = Lake(tmp_path), [], []

    def one_sync() -> None:
        try:
            with AlterClient(emulator.base_url, emulator.key, emulator.token) as client:
                reports.append(run_sync(client, lake, full=True))
        except Exception as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=one_sync) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(reports) == 2
    current = lake.current()
    assert current.parent_id in {r.snapshot_id for r in reports}
    with connect(tmp_path) as con:
        orphans = con.execute(
            "select count(*) from order_items i anti join orders o using (order_id)"
        ).fetchone()[0]
        assert (
            con.execute("select count(*) from orders").fetchone()[0] == emulator.store.order_count()
        )
    assert orphans == 0


def test_row_count_check_fails_when_the_lake_holds_an_order_the_api_lacks(
    emulator, run_sync_job, run_checks, tmp_path
):
    assert run_sync_job(emulator, full=True).success
    lake = Lake(tmp_path)
    with lake.write() as writer:  # a stray row: one order more than the API listed
        current = writer.parent.read_table("orders").select(schemas.ORDERS.names)
        stray = current.slice(0, 1).set_column(1, current.schema.field(1), pa.array([10**9]))
        writer.write_table("orders", pa.concat_tables([current, stray]), schema=schemas.ORDERS)
    result = run_checks(emulator, "orders")
    (row_count,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "row_count_matches_api"
    ]
    assert not row_count.passed
    assert row_count.metadata["rows"].value == row_count.metadata["api_total"].value + 1


def test_sync_under_a_rate_limit_writes_the_same_tables_and_reports_its_429s_and_pace(
    emulator_factory, run_sync_job, tmp_path
):
    # 60 pages at 20 requests/s and 30 ms a reply: the pager must pace itself to stay polite.
    emulator = emulator_factory(orders=3000, rate_limit=20, latency_ms=30)
    result = run_sync_job(emulator, full=True)
    assert result.success
    expected = emulator.store.orders_list()
    with connect(tmp_path) as con:
        orders = con.execute("select order_id, total_value from orders order by 1").fetchall()
        items = con.execute("select order_item_id from order_items order by 1").fetchall()
    assert orders == sorted((o["id"], Decimal(o["totalPrice"]["value"])) for o in expected)
    assert [r[0] for r in items] == sorted(i["id"] for o in expected for i in o["productItems"])
    meta = next(
        m for m in result.get_asset_materialization_events() if m.asset_key.path == ["orders"]
    ).materialization.metadata
    seen = emulator.counters.count(status=429)  # every route: the sync also reads products
    assert meta["api_throttled"].value == seen > 0
    assert 1 <= meta["api_concurrency"].value <= 8
    assert meta["api_pace"].value > 0  # a pace was needed
